"""The text-to-text family's parameters: built-in data, model kind, prompt and generation.

Each dataclass validates itself like the sections of :mod:`nlpflow.params` (``validate(path)``
raises :class:`~nlpflow.errors.UserError` naming the full key). They are kept here until the
family is wired into params.yaml, so that the library can be used and tested on its own.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

from nlpflow.errors import UserError

BUILTIN_KINDS = ("sort", "spell")


def _check(ok: bool, key: str, rule: str) -> None:
    if not ok:
        raise UserError(f"params.yaml: {key} {rule}")


@dataclass
class Text2TextDataParams:
    """The built-in generated task (``data.source: builtin:text2text``).

    Two kinds of example, drawn with the relative weights ``kinds``: ``sort`` writes a word's
    letters in alphabetical order (``sort d b c`` -> ``b c d``), ``spell`` writes a number out
    in English words (``spell 4 0 7`` -> ``four hundred seven``).
    """

    size: int = 2000
    kinds: dict[str, float] = field(default_factory=lambda: {"sort": 1.0, "spell": 1.0})
    min_letters: int = 3
    max_letters: int = 6
    alphabet: str = "abcdefghijklmnop"
    max_number: int = 9999
    # A classification source (builtin:anagram, or a file with data.text_fields and a label
    # per row) run as generation: the input is the text fields joined by " | ", the target
    # the label name; evaluate parses outputs back to labels. Needs data.task: text2text.
    label_task: bool = False

    def validate(self, path: str) -> None:
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        unknown = sorted(set(self.kinds) - set(BUILTIN_KINDS))
        _check(not unknown, f"{path}.kinds", f"has unknown kinds {unknown}; use {BUILTIN_KINDS}")
        _check(
            all(w >= 0 for w in self.kinds.values()) and sum(self.kinds.values()) > 0,
            f"{path}.kinds",
            "weights must be >= 0 with at least one > 0",
        )
        _check(self.min_letters >= 1, f"{path}.min_letters", "must be at least 1")
        _check(
            self.max_letters >= self.min_letters,
            f"{path}.max_letters",
            f"must be >= min_letters ({self.min_letters})",
        )
        _check(
            len(set(self.alphabet)) >= 2
            and all(c in string.ascii_lowercase for c in self.alphabet),
            f"{path}.alphabet",
            "needs at least 2 distinct lowercase letters a-z",
        )
        _check(
            0 <= self.max_number <= 999_999,
            f"{path}.max_number",
            "must be in [0, 999999] (numbers are spelled up to the thousands)",
        )


@dataclass
class PromptedParams:
    """The prompted baselines of evaluate: the base model (before fine-tuning) prompted
    through the training template, zero-shot and with ``few_shot`` train examples drawn
    with ``seed``, on the first ``max_rows`` rows of each split."""

    zero_shot: bool = True
    few_shot: int = 3  # train examples in front of each prompt; 0 = no few-shot baseline
    seed: int = 0  # which train examples are drawn
    max_rows: int = 200  # rows of each split prompted (the first ones); 0 = no prompting

    def validate(self, path: str) -> None:
        _check(self.few_shot >= 0, f"{path}.few_shot", "must be >= 0 (0 = none)")
        _check(self.max_rows >= 0, f"{path}.max_rows", "must be >= 0 (0 = no prompting)")


@dataclass
class GenerationParams:
    """How outputs are generated: greedy (``num_beams: 1``, no sampling), beam search, or
    sampling with a seed."""

    max_new_tokens: int = 32
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    top_p: float = 1.0
    seed: int = 0  # sampling only: the same seed gives the same samples
    batch_size: int = 64
    # evaluate only: the base model prompted beside the fine-tuned one
    prompted: PromptedParams = field(default_factory=PromptedParams)

    def validate(self, path: str) -> None:
        _check(self.max_new_tokens >= 1, f"{path}.max_new_tokens", "must be >= 1")
        _check(self.num_beams >= 1, f"{path}.num_beams", "must be >= 1")
        _check(self.temperature > 0, f"{path}.temperature", "must be > 0")
        _check(self.top_k >= 0, f"{path}.top_k", "must be >= 0 (0 = no cut)")
        _check(0 < self.top_p <= 1, f"{path}.top_p", "must be in (0, 1]")
        _check(self.batch_size >= 1, f"{path}.batch_size", "must be >= 1")


@dataclass
class Text2TextModelParams:
    """What a text-to-text model is (``model.text2text``; the sizes, ``name_or_path`` and
    dropout are ``model``'s own): encoder-decoder (``seq2seq``: T5/BART style) or
    decoder-only (``causal``: GPT-2/Llama style).

    The prompt is ``prompt_template`` with the input in place of ``{input}``, for both kinds;
    a decoder-only model reads it followed by the target, the loss on the target tokens only.
    """

    kind: Literal["seq2seq", "causal"] = "seq2seq"
    prompt_template: str = "{input} ="
    max_input_length: int = 32  # tokens of the input itself; longer inputs are cut (counted)
    max_target_length: int = 32  # tokens, the end-of-text token included

    def validate(self, path: str) -> None:
        _check(
            self.prompt_template.count("{input}") == 1,
            f"{path}.prompt_template",
            "must hold {input} exactly once (where the input goes)",
        )
        try:
            self.prompt_template.format(input="")
        except (KeyError, IndexError, ValueError) as err:
            _check(
                False,
                f"{path}.prompt_template",
                f"is not a valid template ({err!r}); write other braces as {{{{ and }}}}",
            )
        _check(self.max_input_length >= 1, f"{path}.max_input_length", "must be >= 1")
        _check(self.max_target_length >= 2, f"{path}.max_target_length", "must be >= 2")
