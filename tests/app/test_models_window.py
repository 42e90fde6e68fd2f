"""The models window on a real ModelStore against the loopback fake Hub of the store tests."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Qt, Slot

from app.download_queue import BAR_STEPS, RateMeter, human_bytes, human_duration
from app.models_window import OFFLINE_SEARCH, ModelsWindow
from engine.store.model_store import ModelStore
# The store tests' fixtures: a private data dir (autouse), the loopback Hub, its tiny repos, a catalog
# pointing at them, and a socket guard.
from tests.engine.store.conftest import data_dir, hub, no_network, store, tiny_repo  # noqa: F401

WAIT_MS = 10_000
MEMORY = 16 << 30


@pytest.fixture
def window(qtbot, store: ModelStore):
    win = ModelsWindow(store, memory_bytes=MEMORY)
    win.confirm = lambda _question: True
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


def installed_names(win: ModelsWindow) -> list[str]:
    table = win.installed_table
    return [table.item(r, 0).text() for r in range(table.rowCount()) if table.item(r, 1).text() != "download"]


def click_catalog_install(qtbot, win: ModelsWindow, row: int = 0) -> None:
    qtbot.mouseClick(win.catalog_table.cellWidget(row, 5), Qt.LeftButton)


class BarWatcher(QObject):
    """Records the first row's bar after every progress signal. A GUI-thread QObject, so the signal is
    queued behind the queue's own slot and each record is what the user saw at that moment."""

    def __init__(self, win: ModelsWindow):
        super().__init__()
        self.win, self.shown = win, []
        win.downloads.worker.progress.connect(self.record)

    @Slot(int, object, object)
    def record(self, *_args) -> None:
        self.shown.append(self.win.queue.rows[0].bar.value())


def test_catalog_install_shows_monotone_progress_and_lists_the_models(qtbot, window, tiny_repo):
    watcher = BarWatcher(window)
    assert window.catalog_table.item(0, 2).text() == "apache-2.0"
    click_catalog_install(qtbot, window)

    assert [r.title.text() for r in window.queue.rows] == ["Tiny: Tiny", "Tiny: Tiny DFlash"]
    qtbot.waitUntil(lambda: all(r.state == "done" for r in window.queue.rows), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "ready" in window.notice.text(), timeout=WAIT_MS)  # the pair check passed
    target_row = window.queue.rows[0]
    shown = watcher.shown
    assert len(shown) >= 3 and shown == sorted(shown) and target_row.bar.value() == BAR_STEPS
    assert target_row.status.text() == "Installed (3.1 MB)."
    assert installed_names(window) == ["Tiny DFlash", "Tiny"]
    assert window.catalog_table.item(0, 4).text() == "installed"
    assert not window.catalog_table.cellWidget(0, 5).isEnabled()


def test_cancel_mid_download_then_retry_resumes(qtbot, window, tiny_repo):
    def cancel_halfway(job_id, done, total):
        # Runs on the download thread, so the cancel lands while bytes are still arriving.
        if 0 < done < total:
            window.queue.rows[0].job.cancel.set()

    window.downloads.worker.progress.connect(cancel_halfway, Qt.DirectConnection)
    row = window.install_artifact("tiny-target")
    qtbot.waitUntil(lambda: row.state == "cancelled", timeout=WAIT_MS)
    window.downloads.worker.progress.disconnect(cancel_halfway)
    kept = row.done_bytes
    assert 0 < kept < 3 << 20
    assert "cancelled" in row.status.text() and row.retry_button.isVisible()
    window.refresh()  # the partial file is listed and can be resumed
    assert any("partial download" in window.installed_table.item(r, 3).text()
               for r in range(window.installed_table.rowCount()))

    qtbot.mouseClick(row.retry_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: row.state == "done", timeout=WAIT_MS)
    ranges = [r.range for r in tiny_repo.requests("cdn", "GET")]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1].removeprefix("bytes=").rstrip("-")) >= kept  # resumed, not restarted
    assert installed_names(window) == ["Tiny"]


def test_missing_file_shows_the_store_error(qtbot, window, tiny_repo):
    window.search_edit.setText("tiny")
    qtbot.mouseClick(window.search_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.results.topLevelItemCount() == 1, timeout=WAIT_MS)
    quant = window.results.topLevelItem(0).child(0)
    assert quant.text(0) == "Q4_K_M" and quant.text(2) == "fits in memory"
    window.results.setCurrentItem(quant)
    del tiny_repo.repos["org/tiny-GGUF"].files["tiny-Q4_K_M.gguf"]  # gone between listing and download

    qtbot.mouseClick(window.install_quant_button, Qt.LeftButton)
    row = window.queue.rows[0]
    qtbot.waitUntil(lambda: row.state == "failed", timeout=WAIT_MS)
    assert row.status.text() == (
        "Cannot resolve org/tiny-GGUF/tiny-Q4_K_M.gguf@main: the file does not exist in that revision.")
    assert row.retry_button.isVisible()


def test_offline_disables_search_and_touches_no_network(qtbot, window, tiny_repo, no_network):
    window.tabs.setCurrentIndex(2)  # Search
    window.offline.setChecked(True)
    assert window.store.offline and window.store.is_offline
    assert not window.search_edit.isEnabled() and not window.search_button.isEnabled()
    assert window.search_message.isVisible() and window.search_message.text() == OFFLINE_SEARCH
    window.search()  # e.g. Return pressed before the switch: refused with the message, not sent
    assert window.notice.text() == OFFLINE_SEARCH

    row = window.install_artifact("tiny-target")
    qtbot.waitUntil(lambda: row.state == "failed", timeout=WAIT_MS)
    assert "offline mode is on" in row.status.text()
    window.refresh()
    assert no_network.attempts == []

    window.offline.setChecked(False)
    assert window.search_button.isEnabled() and not window.search_message.isVisible()


def test_delete_removes_the_listing(qtbot, window, tiny_repo):
    row = window.install_artifact("tiny-target")
    qtbot.waitUntil(lambda: installed_names(window) == ["Tiny"], timeout=WAIT_MS)
    assert row.state == "done"
    window.installed_table.selectRow(0)
    assert window.verify_button.isEnabled()

    qtbot.mouseClick(window.delete_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: installed_names(window) == [], timeout=WAIT_MS)
    assert window.store.installed() == []
    assert window.notice.text() == "Deleted tiny-target."
    assert not (window.store.root / "tiny-target").exists()


def test_speed_and_time_left_texts():
    now = [0.0]
    meter = RateMeter(clock=lambda: now[0])
    assert meter.add(0) is None  # one sample says nothing about speed
    now[0] = 2.0
    assert meter.add(200_000_000) == 100_000_000
    now[0] = 10.0  # old samples leave the window, so a stall shows up quickly
    assert meter.add(200_000_000) is None
    assert human_bytes(3_145_728) == "3.1 MB" and human_bytes(512) == "512 B"
    assert [human_duration(s) for s in (4.6, 125, 7300)] == ["5 s", "2 min 5 s", "2 h 1 min"]


@pytest.fixture
def embedded_installed(data_dir, tiny_gguf):
    """The embedded default as the app leaves it once assembled: the file and its verified marker."""
    import shutil

    from engine.store.embedded import DEFAULT_TARGET

    path = DEFAULT_TARGET.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_gguf, path)
    st = path.stat()
    path.with_name(path.name + ".verified").write_text(f"{DEFAULT_TARGET.sha256} {st.st_size} {st.st_mtime_ns}\n")
    return path


def test_the_embedded_model_is_listed_as_installed_and_not_offered_again(qtbot, embedded_installed):
    win = ModelsWindow(ModelStore(), memory_bytes=MEMORY)   # the shipped catalog and its built-in bundle
    qtbot.addWidget(win)
    assert installed_names(win) == ["Qwen2.5-Coder 1.5B Instruct Q4_K_M"]
    assert win.installed_table.item(0, 3).text() == "ready (built in)"
    win.installed_table.selectRow(0)
    assert not win.delete_button.isEnabled()   # part of the app
    builtin = next(r for r in range(win.catalog_table.rowCount())
                   if win.catalog_table.item(r, 0).text().endswith("(built in)"))
    # target and shipped drafters are here; only the optional classic draft (for ardraft) is not
    assert win.catalog_table.item(builtin, 4).text() == (
        "installed; Qwen2.5-Coder 0.5B Instruct (classic draft) is not")
    assert win.catalog_table.cellWidget(builtin, 5).text() == "Add the classic draft"
    win.shutdown()


def test_escape_closes_the_window(qtbot, window):
    window.activateWindow()
    qtbot.waitExposed(window)
    qtbot.keyClick(window, Qt.Key_Escape)
    assert not window.isVisible()


def test_use_picks_a_catalog_target_with_its_bundles_drafters(qtbot, window, tiny_repo):
    chosen = []
    window.use_requested.connect(lambda path, drafters: chosen.append((path, drafters)))
    click_catalog_install(qtbot, window)
    qtbot.waitUntil(lambda: "ready" in window.notice.text(), timeout=WAIT_MS)
    row = installed_names(window).index("Tiny")
    window.installed_table.selectRow(installed_names(window).index("Tiny DFlash"))
    assert not window.use_button.isEnabled()   # a drafter is not something to chat with
    window.installed_table.selectRow(row)
    assert window.use_button.isEnabled()
    qtbot.mouseClick(window.use_button, Qt.LeftButton)
    store = window.store
    assert chosen == [(str(store.path_of("tiny-target")), (str(store.path_of("tiny-drafter")), ""))]


def test_use_the_embedded_model(qtbot, embedded_installed):
    win = ModelsWindow(ModelStore(), memory_bytes=MEMORY)
    qtbot.addWidget(win)
    chosen = []
    win.use_requested.connect(lambda path, drafters: chosen.append((path, drafters)))
    win.installed_table.selectRow(0)
    qtbot.mouseClick(win.use_button, Qt.LeftButton)
    assert chosen == [("", ("", ""))]   # the settings' names for the embedded default and its shipped pair
    win.shutdown()
