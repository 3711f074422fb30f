"""Durations, prices and dates as each language writes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.utils import translation

from config.durations import duration_text, wait_text
from web.templatetags.web_tags import dollars

MOMENT = datetime(2026, 3, 2, 17, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "price", "whole_price", "date"),
    [
        ("en", "$1,234.50", "$19", "2026-03-02 17:05"),
        ("fr", "1\xa0234,50 $", "19 $", "2 mars 2026 17:05"),
    ],
)
def test_each_language_writes_numbers_and_dates_its_own_way(
    language: str, price: str, whole_price: str, date: str
) -> None:
    with translation.override(language):
        assert duration_text(5 * 3600 + 12 * 60) == "5 h 12 min"
        assert wait_text(45) == "45 s"
        assert dollars(123450) == price
        assert dollars(1900) == whole_price
        rendered = Template('{{ moment|date:"DATETIME_FORMAT" }}').render(
            Context({"moment": MOMENT})
        )
        assert rendered == date
