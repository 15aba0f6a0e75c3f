"""@lightwork.offloadable: names, the function left as it was, and clear refusals."""

from __future__ import annotations

import pytest

import lightwork
from lightwork._offload._registry import lookup, registrations
from tests import offload_jobs as jobs


def first() -> str:
    return "first"


def second() -> str:
    return "second"


def undecorated() -> None: ...


def test_the_name_is_given_or_the_dotted_path() -> None:
    assert lookup(jobs.add).name == "add"
    assert lookup(jobs.shout).name == "tests.offload_jobs.shout"
    registration = lookup("add")
    assert registration.function is jobs.add
    assert registration.module == "tests.offload_jobs"
    assert registration.is_async is False
    assert lookup(jobs.shout).is_async is True
    assert "add" in registrations()


def test_the_function_is_returned_unchanged_and_still_callable() -> None:
    decorated = lightwork.offloadable("registry-first")(first)
    assert decorated is first
    assert decorated() == "first"
    assert lightwork.offloadable()(first) is first  # the empty-parentheses form
    assert lookup("registry-first").function is first
    assert lookup(first).name == "tests.offload.test_offload_registry.first"  # the latest name


def test_a_name_taken_by_another_function_is_refused() -> None:
    lightwork.offloadable("registry-taken")(first)
    lightwork.offloadable("registry-taken")(first)  # the same function again: fine
    with pytest.raises(ValueError, match="'registry-taken' is already registered to"):
        lightwork.offloadable("registry-taken")(second)


def test_only_module_level_functions_can_be_jobs() -> None:
    def nested() -> None: ...

    with pytest.raises(TypeError, match="module-level functions"):
        lightwork.offloadable(nested)
    with pytest.raises(TypeError, match="module-level functions"):
        lightwork.offloadable(print)
    with pytest.raises(TypeError, match="non-empty job name"):
        lightwork.offloadable("  ")


def test_lookup_failures_say_what_is_registered() -> None:
    with pytest.raises(lightwork.JobNotRegisteredError, match=r"known jobs: .*'add'"):
        lookup("no-such-job")
    with pytest.raises(lightwork.JobNotRegisteredError, match="decorate it with"):
        lookup(undecorated)
