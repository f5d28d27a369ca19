"""The writer agent of the example project; `python -m agents.writer` runs one worker."""
from laddr import Agent

from agents._worker import run

writer = Agent(
    name="writer",
    role="Writer",
    goal="Turn the analysis into clear prose",
    max_iterations=3,
)

if __name__ == "__main__":
    run(writer)
