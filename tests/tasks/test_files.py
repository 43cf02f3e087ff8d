"""Question files under a task: good rows read, every bad one refused with its line and why.

    .venv/bin/python -m pytest -q tests/tasks/test_files.py
"""

import json

import pytest

from app.tasks.files import DatasetError, Question, parse_spec, read_builtin, read_questions
from app.tasks.registry import get_task


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_a_gsm8k_style_file_reads_references_and_solutions(tmp_path):
    path = write(tmp_path / "t.jsonl", [{"q": "Sam has 2 pens. He buys 3 more. How many?", "a": "2+3=5.\n#### 5"},
                                        "", {"q": "Two and two?", "a": 4}])
    got = read_questions(path, get_task("gsm8k"), "q", "a")
    assert got == [Question("Sam has 2 pens. He buys 3 more. How many?", "5", "2+3=5.\n#### 5"),
                   Question("Two and two?", "4", None)]  # a bare answer is no worked solution


@pytest.mark.parametrize("rows,task,message", [
    ([], "gsm8k", "no rows (the file is empty)"),
    (["", "  "], "gsm8k", "no rows"),
    (["not json"], "gsm8k", ":1: not a JSON line"),
    ([[1, 2]], "gsm8k", ":1: not a JSON object"),
    ([{"question": "q", "answer": "1"}, {"problem": "q", "answer": "1"}], "gsm8k",
     ":2: no 'question' field (the row has 'problem', 'answer'); name the field with --question-field"),
    ([{"question": "q", "solution": "1"}], "gsm8k", "no 'answer' field (the row has 'question', 'solution')"),
    ([{"question": " ", "answer": "1"}], "gsm8k", "'question' is not a non-empty string"),
    ([{"question": "q", "answer": "seventy-two"}], "gsm8k", "is not an answer of task gsm8k"),
    ([{"question": "q", "answer": "2+3=5.\n#### 5"}], "synthetic",
     "is not an answer of task synthetic (it reads an integer, as in 'The answer is 31.'); task gsm8k reads it"),
    ([{"question": "q", "answer": "... #### 5"}], "math", "task gsm8k reads it"),
])
def test_bad_files_are_refused_with_their_line(tmp_path, rows, task, message):
    path = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DatasetError) as e:
        read_questions(path, get_task(task))
    assert message in str(e.value) and str(path) in str(e.value)


def test_specs_and_builtin_files(data_dir):
    assert parse_spec("gsm8k") == ("gsm8k", None) and parse_spec("jsonl:a/b.jsonl")[1].name == "b.jsonl"
    for bad in ("jsonl:", "imagenet"):
        with pytest.raises(DatasetError, match="unknown dataset"):
            parse_spec(bad)
    gsm8k = read_builtin("gsm8k", get_task("gsm8k"))
    assert len(gsm8k) == 7473 and gsm8k[0].answer == "72" and gsm8k[0].solution.endswith("#### 72")
    math500 = read_builtin("math500", get_task("math"))
    assert len(math500) == 500 and all(q.solution and "\\boxed" in q.solution for q in math500)
