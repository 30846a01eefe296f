"""What a site operator runs besides `pulumi`: `python -m sitectl plan|... SITE`.

The offline plan (the program under the SDK's mocks, the policy pack over its result, the
files it renders) lives here; developer tools (benchmarks, baselines, test dependencies)
live in `tools/`.
"""
