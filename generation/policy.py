"""The content policy: terms matched case- and accent-insensitively on word boundaries.

"Greg Rutkowski", "greg-rutkowski" and "GRÉG RUTKOWSKI" all match the rule "Greg
Rutkowski"; "gregory" does not match "greg". Refusals cost nothing and are logged.

Prompts may be English or French: the phrase asking for an imitation ("in the style of",
"à la manière de", "dans le style d'", "par"...) is replaced together with the term, and an
elided article or preposition ("l'ombre", "d'Hayao Miyazaki") is a word boundary. A refusal
is written in the caller's language, from the rule's translation when it has one, else in
English.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from accounts.models import User, Workspace
from billing.models import ModerationLevel, Plan
from config.errors import DomainError
from config.sql import column_list, model_rows
from generation.models import PolicyRefusal, PolicyRule, PolicyRuleTranslation

# A leading phrase that asks for an imitation, replaced together with the term; matched on
# the folded prompt (lower case, no accents), so "à la manière de" is "a la maniere de".
_IMITATION_EN = r"(?:(?:in\W+the\W+)?(?:style|manner)\W+of|by|like)"
_IMITATION_FR = (
    r"(?:(?:(?:(?:a\W+)?la\W+)?(?:maniere|facon)|(?:dans\W+le\W+)?style|inspiree?s?)(?:\W+d[eu]?)?"
    r"|d\W*apres|par|comme)"
)
_IMITATION = rf"(?:{_IMITATION_EN}|{_IMITATION_FR})\W+"


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
class PolicyText:
    """What a refusal says, in one language."""

    reason: str
    suggestion: str
    replacement: str


def policy_text(rule: PolicyRule, language: str | None) -> PolicyText:
    """The rule's words in `language` (a code such as "fr" or "fr-ca"), else in English."""
    code = (language or "en").split("-")[0].lower()
    translated = (
        PolicyRuleTranslation.objects.filter(rule=rule, language=code).first()
        if code != "en" and rule.pk is not None
        else None
    )
    source = translated or rule
    return PolicyText(
        reason=source.reason, suggestion=source.suggestion, replacement=source.replacement
    )


@dataclass(frozen=True)
class PolicyMatch:
    rule: PolicyRule
    start: int  # span in the original prompt, including an imitation phrase before the term
    end: int

    def rewrite(self, prompt: str, replacement: str | None = None) -> str:
        """The prompt with the matched phrase replaced (by default with the rule's English
        replacement)."""
        replacement = self.rule.replacement if replacement is None else replacement
        replacement = replacement or ""
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

    def __init__(self, match: PolicyMatch, prompt: str, text: PolicyText | None = None) -> None:
        text = text or policy_text(match.rule, "en")
        super().__init__(
            (
                _("This request was refused: %(reason)s %(suggestion)s")
                % {"reason": text.reason, "suggestion": text.suggestion}
            ).strip(),
            param="prompt",
            reason=text.reason,
            suggestion=text.suggestion,
            suggested_prompt=match.rewrite(prompt, text.replacement) if text.replacement else None,
        )


def moderation_level(*, plan: Plan, requested: str | None = None) -> str:
    """The moderation level of a request: its plan's, or standard where a strict plan lets a
    request ask for less (OpenAI's moderation="low"); "auto" or nothing keeps the plan's."""
    if requested == "low" and plan.moderation_low_allowed:
        return ModerationLevel.STANDARD
    return plan.moderation_level


# The active rules in PolicyRule's order, without the ORM's compilation on every submission:
# all of them at the strict level, else all but the strict ones.
_RULES = f"SELECT {column_list(PolicyRule)} FROM generation_policyrule WHERE active"  # noqa: S608
_ACTIVE_RULES_SQL = f"{_RULES} ORDER BY term"
_STANDARD_RULES_SQL = f"{_RULES} AND level <> 'strict' ORDER BY term"


def policy_check(
    *, workspace: Workspace, user: User | None, prompt: str, level: str = ModerationLevel.STANDARD
) -> None:
    """Raise PolicyRefused (422) for a prompt a rule refuses, and log it for review. Strict
    rules apply only at the strict level."""
    sql = _ACTIVE_RULES_SQL if level == ModerationLevel.STRICT else _STANDARD_RULES_SQL
    match = policy_match(prompt, model_rows(PolicyRule, sql, ()))
    if match is None:
        return
    PolicyRefusal.objects.create(
        workspace=workspace,
        user=user if user is not None and user.is_authenticated else None,
        rule=match.rule,
        prompt=prompt,
    )
    raise PolicyRefused(match, prompt, policy_text(match.rule, get_language()))
