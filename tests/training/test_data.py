import random

import torch

from app.tasks import synthetic
from app.training.base import base_conversation
from app.training.data import anchored_loss, collate, encode_example, weighted_loss


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


def test_anchored_loss_is_the_kl_to_the_reference_on_anchor_weighted_tokens_only():
    batch = collate([([1, 2, 3, 4], [1, 1, 1, 1], [0, 0, 1, 1]), ([1, 2, 3], [0, 1, 1])], pad_id=0)
    assert batch["anchor"].tolist() == [[0, 1, 1], [0, 0, 0]]  # an example without anchors weighs 0
    ref = torch.randn(2, 4, 8)
    assert anchored_loss(ref, ref, batch).item() == 0.0  # the reference itself: nothing to pull back
    moved = ref.clone()
    moved[0, 0] += torch.randn(8) * 5  # position 0 (anchor weight 0) and the second example: no effect
    moved[1] += torch.randn(4, 8) * 5
    assert anchored_loss(moved, ref, batch).item() == 0.0
    moved[0, 1, 3] += 4.0  # an anchored position: KL(ref || model), by hand
    p, q = torch.softmax(ref[0, 1], -1), torch.softmax(moved[0, 1], -1)
    by_hand = (p * (p.log() - q.log())).sum() / 2  # averaged over the 2 anchored positions
    assert torch.allclose(anchored_loss(moved, ref, batch), by_hand, atol=1e-5)


def test_base_conversation_shapes_cover_the_refinement_format():
    rng = random.Random(1)
    p = synthetic.problems(5, 1)[0]
    shapes = {len(base_conversation(rng, p)[0]) for _ in range(200)}
    assert shapes == {2, 4, 6}  # single, one attempt + feedback + answer, two attempts
