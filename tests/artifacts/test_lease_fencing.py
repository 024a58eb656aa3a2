"""What the builder lease fences on disk: versions numbered above the store's newest, nothing
written while the lease is unconfirmed, and servers that never move to an older generation."""

from __future__ import annotations

import pytest

from recommendation_service.artifacts.control_files import ControlFiles
from recommendation_service.artifacts.store import ModelStore
from recommendation_service.artifacts.store_lease import current_text, parse_current
from recommendation_service.errors import LeaseLost
from recommendation_service.server.model_watcher import ModelWatcher


def test_current_names_the_version_and_the_generation_that_wrote_it():
    text = current_text("v00000012", 7, "host-b:42:abc")
    assert text.decode().splitlines()[0] == "v00000012"
    assert parse_current(text) == ("v00000012", 7)
    assert parse_current(current_text(None, 3, "b")) == (None, 3)  # claimed before any version
    assert parse_current(b"v00000004\n") == ("v00000004", None)  # the directory lease's
    assert parse_current(None) == (None, None)
    assert parse_current(b"../etc\ngeneration x\n") == (None, None)


def test_versions_are_numbered_above_the_floor_and_carry_the_generation(tmp_path, planted_model):
    store = ModelStore(tmp_path / "m", writer="b")
    store.floor, store.lease_generation = 41, 5
    manifest = store.publish(planted_model)
    assert manifest["version"] == 42 and manifest["lease_generation"] == 5
    assert manifest["builder_host"]
    assert store.publish(planted_model)["version"] == 43


def test_nothing_becomes_visible_while_the_lease_is_unconfirmed(tmp_path, planted_model):
    store = ModelStore(tmp_path / "m")
    store.publish(planted_model)
    store.guard = lambda: False
    with pytest.raises(LeaseLost):
        store.publish(planted_model)
    with pytest.raises(LeaseLost):
        store.write_update("v00000001", 1, {})
    assert store.current_name() == "v00000001" and store.versions() == [1]
    assert store.update_numbers("v00000001") == []


def test_a_server_refuses_a_version_of_an_older_generation_unless_pinned(tmp_path, planted_model):
    store = ModelStore(tmp_path / "m")
    store.lease_generation = 9
    store.publish(planted_model)
    watcher = ModelWatcher(ModelStore(tmp_path / "m"))
    watcher.refresh()
    assert watcher.model.version == 1
    store.lease_generation = 4  # a builder that lost the lease, still writing
    store.publish(planted_model)
    watcher.refresh()
    assert watcher.model.version == 1 and watcher.failed_version == "v00000002"
    assert "generation 4" in watcher.last_error
    store.lease_generation = 10
    store.publish(planted_model)
    watcher.refresh()
    assert watcher.model.version == 3
    # A rollback to a version of an older generation is the operator's choice.
    ControlFiles(store).set_pin("v00000002")
    watcher.refresh()
    assert watcher.model.version == 2
