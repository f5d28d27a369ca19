"""The analyzer agent of the example project; `python -m agents.analyzer` runs one worker."""
from laddr import Agent

from agents._worker import run

analyzer = Agent(
    name="analyzer",
    role="Analyzer",
    goal="Find what the gathered facts mean",
    max_iterations=3,
)

if __name__ == "__main__":
    run(analyzer)
