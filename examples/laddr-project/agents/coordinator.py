"""The coordinator agent of the example project; `python -m agents.coordinator` runs one worker."""
from laddr import Agent

from agents._worker import run

coordinator = Agent(
    name="coordinator",
    role="Task coordinator",
    goal="Split a request into steps and hand each to the right agent",
    max_iterations=3,
)

if __name__ == "__main__":
    run(coordinator)
