"""The researcher agent of the example project; `python -m agents.researcher` runs one worker."""
from laddr import Agent

from agents._worker import run

researcher = Agent(
    name="researcher",
    role="Researcher",
    goal="Gather the facts a request needs",
    max_iterations=3,
)

if __name__ == "__main__":
    run(researcher)
