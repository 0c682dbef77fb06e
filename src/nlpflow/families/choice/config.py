"""``data.choice``: how a file's options are found, and the built-in multiple-choice task."""

from __future__ import annotations

from dataclasses import dataclass, field

from nlpflow.errors import UserError

# The built-in task draws its wrong options from the words of the other categories.
MAX_BUILTIN_OPTIONS = 8


def _check(ok: bool, key: str, rule: str) -> None:
    if not ok:
        raise UserError(f"params.yaml: {key} {rule}")


@dataclass
class ChoiceParams:
    """Multiple-choice sources and the built-in task.

    ``options``: one name is a column holding the list of options (``{"options": [...]}``);
    several names are the option columns in order (SWAG's ``ending0`` .. ``ending3``,
    WinoGrande's ``option1``, ``option2``). The context is ``data.text_fields`` (several fields
    are joined with a space: SWAG's ``sent1``, ``sent2``) and the answer ``data.label_field``.
    ``label_base``: 0 when labels count options from 0, 1 when from 1 (WinoGrande's
    ``answer``). ``size`` and ``num_options``: the built-in data set (``builtin:choice``).
    """

    options: list[str] = field(default_factory=lambda: ["options"])
    label_base: int = 0
    size: int = 2000
    num_options: int = 4

    def validate(self, path: str) -> None:
        _check(bool(self.options), f"{path}.options", "must name a list column or >= 2 columns")
        _check(
            len(set(self.options)) == len(self.options),
            f"{path}.options",
            f"names a column twice ({self.options})",
        )
        _check(self.label_base in (0, 1), f"{path}.label_base", "must be 0 or 1")
        _check(self.size >= 30, f"{path}.size", "must be at least 30 (enough for three splits)")
        _check(
            2 <= self.num_options <= MAX_BUILTIN_OPTIONS,
            f"{path}.num_options",
            f"must be between 2 and {MAX_BUILTIN_OPTIONS}",
        )
