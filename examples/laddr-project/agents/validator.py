"""The validator agent of the example project; `python -m agents.validator` runs one worker."""
from laddr import Agent

from agents._worker import run

validator = Agent(
    name="validator",
    role="Validator",
    goal="Check the written answer against the request",
    max_iterations=3,
)

if __name__ == "__main__":
    run(validator)
