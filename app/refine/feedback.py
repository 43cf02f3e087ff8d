"""Feedback wording, in one place. `{question}` is replaced by the question; the reference answer
is never available here, so it cannot reach a prompt."""

DEFAULT_FEEDBACK = "The answer is incorrect. Please try again. Here's the question: {question}"


def render_feedback(template: str, question: str) -> str:
    return template.replace("{question}", question)
