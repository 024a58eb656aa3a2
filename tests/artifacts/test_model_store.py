import json
import multiprocessing as mp
import os
import time

import numpy as np
import pytest

from recommendation_service.artifacts.store import ModelStore, version_name
from recommendation_service.common.id_table import (
    IdTable,
    byte_order,
    decode_strings,
    encode_strings,
)
from recommendation_service.data.events import Event
from recommendation_service.data.window import SlidingWindow
from recommendation_service.errors import ModelLoadError, NoModelError
from recommendation_service.recommend.served_model import ServedModel
from recommendation_service.training.params import ALSParams
from recommendation_service.training.trained_model import TrainedModel


def stamped_model(stamp: int, n_users=40, n_items=60, factors=8) -> TrainedModel:
    """A model whose every factor equals ``stamp``, so a mixed-up version is detectable."""
    w = SlidingWindow(10_000)
    for u in range(n_users):
        for i in range(0, n_items, 7):
            w.add(Event(f"u{u}", f"i{(i + u) % n_items}"))
    snap = w.snapshot()
    return TrainedModel(
        np.full((snap.n_users, factors), stamp, dtype=np.float32),
        np.full((snap.n_items, factors), stamp, dtype=np.float32),
        snap,
        ALSParams(factors=factors),
        0.0,
    )


def test_strings_round_trip():
    values = ["", "a", "ünï", "x" * 300, "with:colon"]
    assert decode_strings(*encode_strings(values)) == values


def test_id_table_lookups_without_a_dictionary():
    ids = ["b", "a", "ünï", "10", "9", "user:1", "a b"]
    table = IdTable(*encode_strings(ids), byte_order(ids))
    assert table.consistency_problem() is None
    assert [table.row_of(i) for i in ids] == list(range(len(ids)))
    assert table.row_of("missing") is None and table.row_of("") is None
    assert table[2] == "ünï" and list(table) == ids and len(table) == 7
    broken = IdTable(*encode_strings(ids), np.zeros(7, dtype=np.int64))
    assert "permutation" in broken.consistency_problem()


def test_publish_then_read_round_trip(tmp_path, planted_model):
    store = ModelStore(tmp_path)
    manifest = store.publish(planted_model, offsets={"interactions": {0: 4000, 1: 12}})
    assert manifest["version"] == 1 and store.current_name() == "v00000001"
    read_manifest, arrays = store.read_version()
    assert read_manifest == json.loads(json.dumps(manifest))
    assert read_manifest["offsets"] == {"interactions": {"0": 4000, "1": 12}}
    assert read_manifest["window_size"] == planted_model.snapshot.n_events
    assert np.array_equal(arrays["user_vectors"][:, :16], planted_model.user_factors)
    model = ServedModel(read_manifest, arrays)
    assert list(model.user_ids) == planted_model.snapshot.user_ids
    assert list(model.item_ids) == planted_model.snapshot.item_ids


def test_no_pickle_in_any_file(tmp_path, planted_model):
    store = ModelStore(tmp_path)
    store.publish(planted_model)
    for path in (tmp_path / "versions" / "v00000001").glob("*.npy"):
        np.load(path, allow_pickle=False)  # raises if an object array was written


def test_before_first_publish(tmp_path):
    with pytest.raises(NoModelError):
        ModelStore(tmp_path).read_version()


def test_versions_increase_and_old_ones_are_pruned(tmp_path):
    store = ModelStore(tmp_path, keep=3)
    for stamp in range(1, 7):
        store.publish(stamped_model(stamp))
    assert store.versions() == [4, 5, 6]
    assert store.current_name() == version_name(6)
    assert not list((tmp_path / "versions").glob(".t*"))
    # A restarted builder continues numbering after what is on disk.
    assert ModelStore(tmp_path).publish(stamped_model(7))["version"] == 7


def test_corrupt_file_is_refused(tmp_path):
    store = ModelStore(tmp_path)
    store.publish(stamped_model(1))
    path = tmp_path / "versions" / "v00000001" / "scoring_matrix.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        store.read_version()


def test_truncated_and_missing_files_are_refused(tmp_path):
    store = ModelStore(tmp_path)
    store.publish(stamped_model(1))
    directory = tmp_path / "versions" / "v00000001"
    os.truncate(directory / "user_vectors.npy", 10)
    with pytest.raises(ModelLoadError):
        store.read_version()
    (directory / "user_vectors.npy").unlink()
    with pytest.raises(ModelLoadError):
        store.read_version()


def test_mismatched_arrays_are_refused(tmp_path):
    store = ModelStore(tmp_path)
    store.publish(stamped_model(1))
    manifest, arrays = store.read_version()
    arrays = dict(arrays, scoring_matrix=arrays["scoring_matrix"][:-1])
    with pytest.raises(ModelLoadError, match="scoring matrix"):
        ServedModel(manifest, arrays)


def test_bad_current_pointer(tmp_path):
    (tmp_path / "CURRENT").write_text("../../etc/passwd")
    with pytest.raises(ModelLoadError):
        ModelStore(tmp_path).current_name()


def _reader(root, stop_at, results):
    store = ModelStore(root)
    checked = errors = 0
    while time.monotonic() < stop_at:
        try:
            manifest, arrays = store.read_version()
            model = ServedModel(manifest, arrays)
        except NoModelError:
            continue
        except ModelLoadError:
            # Allowed only when the version was pruned between reading CURRENT and its files.
            errors += 1
            continue
        stamps = {float(model.user_factors[0, 0]), float(model.item_factors[-1, -1])}
        if stamps != {float(manifest["version"])}:
            results.put(f"mixed model: version {manifest['version']} has factors {stamps}")
            return
        checked += 1
    results.put((checked, errors))


def test_reader_racing_a_writer_never_sees_a_broken_model(tmp_path):
    store = ModelStore(tmp_path, keep=3)
    results = mp.get_context("spawn").Queue()
    stop_at = time.monotonic() + 4
    reader = mp.get_context("spawn").Process(target=_reader, args=(tmp_path, stop_at, results))
    reader.start()
    version = 0
    while time.monotonic() < stop_at:
        version += 1
        store.publish(stamped_model(version))
    reader.join(30)
    outcome = results.get(timeout=5)
    assert isinstance(outcome, tuple), outcome
    checked, errors = outcome
    assert checked > 10 and version > 10
    assert errors <= checked // 10
