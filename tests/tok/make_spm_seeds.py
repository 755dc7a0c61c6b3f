#!/usr/bin/env python3
"""Writes the small seed models of fuzz_tok_spm_load to tests/fuzz/corpus/tok_spm_load/.

Built here, not copied: a hand-made BPE ModelProto (byte fallback, a user-defined and
an unused piece), the same without byte fallback, and a model trained on a few lines
with a tiny custom normalization rule (so it carries a small precompiled charsmap).
Run: python3 tests/tok/make_spm_seeds.py
"""
import os
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "tok_spm_load")
T = pb.ModelProto.SentencePiece


def handmade(byte_fallback):
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = byte_fallback
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.remove_extra_whitespaces = False

    def add(s, score, ty=T.NORMAL):
        p = m.pieces.add()
        p.piece, p.score, p.type = s, score, ty
    add("<unk>", 0, T.UNKNOWN)
    add("<s>", 0, T.CONTROL)
    add("</s>", 0, T.CONTROL)
    if byte_fallback:
        for b in range(256):
            add("<0x%02X>" % b, 0, T.BYTE)
    add("[INST]", 0, T.USER_DEFINED)
    for i, s in enumerate(["\u2581H", "el", "lo", "\u2581w", "or", "ld", "\u2581Hel", "ello", "\u2581wor"]):
        add(s, -i)
    add("\u2581world", -20, T.UNUSED)
    for i, c in enumerate("\u2581Helowrdabcx"):
        add(c, -30 - i)
    return m.SerializeToString()


def trained():
    d = tempfile.mkdtemp()
    text = os.path.join(d, "t.txt")
    with open(text, "w") as f:
        f.write("Hello world\nABC abc\nthe cat sat on the mat\n" * 20)
    rule = os.path.join(d, "rule.tsv")
    with open(rule, "w") as f:
        f.write("41\t61\n42\t62\n43\t63\n9\t20\n")  # A->a B->b C->c TAB->space
    spm.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(d, "m"), model_type="bpe",
                                   vocab_size=40, normalization_rule_tsv=rule, minloglevel=2,
                                   byte_fallback=False, num_threads=1)
    return open(os.path.join(d, "m.model"), "rb").read()


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, blob in (("handmade_bf.model", handmade(True)), ("handmade_nobf.model", handmade(False)),
                       ("trained_rule.model", trained())):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
        print(name, len(blob), "bytes")


if __name__ == "__main__":
    main()
