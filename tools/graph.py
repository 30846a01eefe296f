"""The deploy graph of a program run: which resources wait for which, and how deep it goes.

Only custom resources (what a provider creates) count; a dependency on a component is a
dependency on everything inside it, as the engine treats it. The longest chain is how many
steps must happen one after another; the widest level is how many can run at once.
"""

from __future__ import annotations

from functools import cache

from sitectl.mockrun import ProgramRun


def dependency_graph(run: ProgramRun) -> dict[str, set[str]]:
    """Each custom resource's URN mapped to the custom resources it waits for."""
    return {r.urn: run.custom_dependencies(r) for r in run.resources if r.custom}


def depths(graph: dict[str, set[str]]) -> dict[str, int]:
    """For each resource, the number of resources on the longest chain ending at it."""

    @cache
    def depth(urn: str) -> int:
        return 1 + max((depth(d) for d in graph.get(urn, ()) if d in graph), default=0)

    return {urn: depth(urn) for urn in graph}


def longest_chain(graph: dict[str, set[str]]) -> int:
    return max(depths(graph).values(), default=0)


def widest_level(graph: dict[str, set[str]]) -> int:
    """The most resources that share a depth: steps the engine can run side by side."""
    counts: dict[int, int] = {}
    for level in depths(graph).values():
        counts[level] = counts.get(level, 0) + 1
    return max(counts.values(), default=0)


def depends_on(graph: dict[str, set[str]], urn: str, other: str) -> bool:
    """Does `urn` wait for `other`, directly or through other resources?"""
    seen: set[str] = set()
    stack = [urn]
    while stack:
        for dep in graph.get(stack.pop(), ()):
            if dep == other:
                return True
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return False
