"""The examples in docstrings are tests too."""

import doctest
import importlib
import pkgutil

import pytest

import detectors
import service

MODULES = sorted(
    name for package in (detectors, service)
    for _, name, _ in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
