"""Shared test settings: which databases the platform tests run against."""

import os

import pytest


def pytest_report_header(config):
    url = os.environ.get("CULTURELAB_TEST_POSTGRES_URL")
    return f"PostgreSQL tests: {'on ' + url if url else 'skipped (CULTURELAB_TEST_POSTGRES_URL not set)'}"


@pytest.fixture(scope="session")
def postgres_url():
    url = os.environ.get("CULTURELAB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: set CULTURELAB_TEST_POSTGRES_URL (make test does)")
    return url
