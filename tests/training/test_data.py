import random

import torch

from app.tasks import synthetic
from app.training.base import base_conversation
from app.training.data import collate, encode_example, weighted_loss


def test_encoding_matches_the_chat_template_and_weights_only_assistant_turns(model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    rng = random.Random(0)
    for p in synthetic.problems(0, 30):
        msgs, w = base_conversation(rng, p)
        ids, weights = encode_example(tok, msgs, w)
        rendered = tok.apply_chat_template(msgs, tokenize=False)
        assert ids == tok(rendered, add_special_tokens=False)["input_ids"]
        weighted = tok.decode([i for i, x in zip(ids, weights) if x > 0])
        assert weighted.endswith(p.solution + "<|end|>")  # the target is the correct solution
        assert p.question not in weighted  # no weight on user turns


def test_weighted_loss_ignores_zero_weight_tokens():
    batch = collate([([1, 2, 3, 4], [0, 0, 1, 1]), ([1, 2], [0, 1])], pad_id=0)
    logits = torch.randn(2, 4, 8)
    loss = weighted_loss(logits, batch)
    logits2 = logits.clone()
    logits2[0, 0, 2] += 100  # position 0 predicts token 2 (weight 0): must not change the loss
    assert torch.allclose(loss, weighted_loss(logits2, batch))
    logits2[0, 2, 4] += 100  # position 2 predicts token 4 (weight 1): must
    assert not torch.allclose(loss, weighted_loss(logits2, batch))


def test_base_conversation_shapes_cover_the_refinement_format():
    rng = random.Random(1)
    p = synthetic.problems(5, 1)[0]
    shapes = {len(base_conversation(rng, p)[0]) for _ in range(200)}
    assert shapes == {2, 4, 6}  # single, one attempt + feedback + answer, two attempts
