"""The content policy: terms matched case- and accent-insensitively on word boundaries.

"Greg Rutkowski", "greg-rutkowski" and "GRÉG RUTKOWSKI" all match the rule "Greg
Rutkowski"; "gregory" does not match "greg". Refusals cost nothing and are logged.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from accounts.models import User, Workspace
from config.errors import DomainError
from generation.models import PolicyRefusal, PolicyRule

# A leading phrase that asks for an imitation, replaced together with the term.
_IMITATION = r"(?:(?:in\W+the\W+)?(?:style|manner)\W+of|by|like)\W+"


def fold(text: str) -> tuple[str, list[int]]:
    """`text` lower-cased without accents, and for each folded character its original index."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for piece in unicodedata.normalize("NFKD", char):
            if unicodedata.combining(piece):
                continue
            for lower in piece.casefold():
                folded.append(lower)
                origin.append(index)
    return "".join(folded), origin


@functools.lru_cache(maxsize=4096)
def term_pattern(term: str) -> re.Pattern[str]:
    """Words of the folded term separated by any punctuation or space, on word boundaries."""
    words = re.findall(r"\w+", fold(term)[0])
    body = r"[\W_]+".join(re.escape(word) for word in words)
    return re.compile(rf"(?<![^\W_])(?:{_IMITATION})?({body})(?![^\W_])")


@dataclass(frozen=True)
class PolicyMatch:
    rule: PolicyRule
    start: int  # span in the original prompt, including an imitation phrase before the term
    end: int

    def rewrite(self, prompt: str) -> str:
        replacement = self.rule.replacement or ""
        rewritten = f"{prompt[: self.start]}{replacement}{prompt[self.end :]}"
        return re.sub(r"\s{2,}", " ", rewritten).strip(" ,")


def policy_match(prompt: str, rules: list[PolicyRule]) -> PolicyMatch | None:
    folded, origin = fold(prompt)
    for rule in rules:
        found = term_pattern(rule.term).search(folded)
        if found:
            return PolicyMatch(rule, origin[found.start()], origin[found.end() - 1] + 1)
    return None


class PolicyRefused(DomainError):
    code = "policy_refused"

    def __init__(self, match: PolicyMatch, prompt: str) -> None:
        rule = match.rule
        super().__init__(
            f"This request was refused: {rule.reason} {rule.suggestion}".strip(),
            param="prompt",
            reason=rule.reason,
            suggestion=rule.suggestion,
            suggested_prompt=match.rewrite(prompt) if rule.replacement else None,
        )


def policy_check(*, workspace: Workspace, user: User | None, prompt: str) -> None:
    """Raise PolicyRefused (422) for a prompt a rule refuses, and log it for review."""
    match = policy_match(prompt, list(PolicyRule.objects.filter(active=True)))
    if match is None:
        return
    PolicyRefusal.objects.create(
        workspace=workspace,
        user=user if user is not None and user.is_authenticated else None,
        rule=match.rule,
        prompt=prompt,
    )
    raise PolicyRefused(match, prompt)
