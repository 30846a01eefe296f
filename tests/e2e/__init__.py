"""End-to-end tests of the node-mount scripts against a real Ceph cluster over real SSH."""
