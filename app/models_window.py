"""The models window: installed models (verify, delete, resume), the catalog's bundles, a Hugging Face
GGUF search, and the download queue. Every store call that reads many bytes or touches the network runs
on a worker thread; the offline switch is the store's own, so offline nothing here opens a socket."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from app.download_queue import ERROR_STYLE, DownloadQueue, DownloadRow, human_bytes
from app.model_choices import EMBEDDED, embedded_target, paired_drafters, present_artifacts
from app.store_jobs import JobRunner
from engine.store.catalog import Bundle
from engine.store.model_store import ModelStore
from engine.store.network import is_offline
from engine.store.search import SearchResult, search_gguf, total_memory

OK_STYLE = "color:#1a7f37"
OFFLINE_SEARCH = "Offline mode is on: searching Hugging Face needs the network. Turn offline mode off to search."


class ModelsWindow(QWidget):
    use_requested = Signal(str, object)   # target path ("" for the embedded default), (drafter 1, VP) folders

    def __init__(self, store: ModelStore, parent: QWidget | None = None, *, memory_bytes: int | None = None):
        super().__init__(parent, Qt.Window)
        self.setWindowTitle("Models")
        self.resize(980, 720)
        self.store = store
        self.memory_bytes = total_memory() if memory_bytes is None else memory_bytes
        self.downloads = JobRunner("model-downloads", self)
        self.tasks = JobRunner("model-tasks", self)  # search, verify, delete: never queued behind a download
        self._bundles_to_check: set[str] = set()
        self._imports: set[DownloadRow] = set()   # local files being imported, used once they are in
        self.confirm = self._ask  # replaced in tests, where a modal box would block

        self.offline = QCheckBox("Offline mode (never touch the network)")
        self.offline.toggled.connect(self.set_offline)
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.queue = DownloadQueue(self.downloads)
        self.queue.finished.connect(self._on_download_finished)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._installed_tab(), "Installed")
        self.tabs.addTab(self._catalog_tab(), "Catalog")
        self.tabs.addTab(self._search_tab(), "Search Hugging Face")
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.queue)
        splitter.setSizes([470, 250])
        column = QVBoxLayout(self)
        column.addWidget(self.offline)
        column.addWidget(splitter, 1)
        column.addWidget(self.notice)

        QShortcut(QKeySequence(Qt.Key_Escape), self, activated=self.close)
        self._sync_offline_switch()
        self.refresh()

    # ---- construction ------------------------------------------------------------------------------------

    def _installed_tab(self) -> QWidget:
        self.installed_table = _table(["Name", "Kind", "Size", "State"])
        self.installed_table.doubleClicked.connect(lambda _index: self.use_selected())
        self.use_button = QPushButton("Use", clicked=self.use_selected)
        self.use_button.setToolTip("Chat with this model, with the drafters installed for it")
        self.verify_button = QPushButton("Verify", clicked=self.verify_selected)
        self.delete_button = QPushButton("Delete", clicked=self.delete_selected)
        self.resume_button = QPushButton("Resume download", clicked=self.resume_selected)
        self.installed_table.itemSelectionChanged.connect(self._update_installed_buttons)
        buttons = QHBoxLayout()
        for button in (self.use_button, self.verify_button, self.delete_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(QPushButton("Refresh", clicked=self.refresh))
        return _page(self.installed_table, buttons)

    def _catalog_tab(self) -> QWidget:
        self.catalog_table = _table(["Bundle", "Download size", "License", "Memory needed", "State", ""])
        return _page(self.catalog_table)

    def _search_tab(self) -> QWidget:
        self.search_edit = QLineEdit(placeholderText="Model name, e.g. qwen2.5 coder")
        self.search_edit.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search", clicked=self.search)
        self.search_message = QLabel(OFFLINE_SEARCH)
        self.search_message.setWordWrap(True)
        self.results = QTreeWidget()
        self.results.setHeaderLabels(["Repository / quantization", "Size", "This machine", "Downloads"])
        self.results.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.results.itemSelectionChanged.connect(self._update_search_buttons)
        self.install_quant_button = QPushButton("Download selected quantization", clicked=self.install_selected_quant)
        query_row = QHBoxLayout()
        query_row.addWidget(self.search_edit, 1)
        query_row.addWidget(self.search_button)
        page = _page(self.results, self.install_quant_button)
        page.layout().insertLayout(0, query_row)
        page.layout().insertWidget(1, self.search_message)
        return page

    # ---- offline -----------------------------------------------------------------------------------------

    def set_offline(self, offline: bool) -> None:
        self.store.offline = offline
        self._sync_offline_switch()

    def _sync_offline_switch(self) -> None:
        forced = is_offline(False)  # HF_HUB_OFFLINE in the environment outranks the switch
        self.offline.blockSignals(True)
        self.offline.setChecked(self.store.is_offline)
        self.offline.blockSignals(False)
        self.offline.setEnabled(not forced)
        self.offline.setToolTip("HF_HUB_OFFLINE is set in the environment." if forced else "")
        online = not self.store.is_offline
        self.search_edit.setEnabled(online)
        self.search_button.setEnabled(online)
        self.search_message.setVisible(not online)
        self._update_search_buttons()

    # ---- installed -----------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the registry and partial downloads (local files only) and redraw both listings."""
        table = self.installed_table
        table.setRowCount(0)
        embedded = embedded_target(self.store)
        if embedded is not None:
            _append(table, [embedded.name, "target", human_bytes(embedded.size), "ready (built in)"],
                    key=embedded.key)
        for listing in self.store.installed():
            m = listing.model
            state = "ready" if listing.present else "files missing or changed"
            _append(table, [m.name, m.kind, human_bytes(m.size), state], key=("model", m.id))
        for part in self.store.partial_downloads():
            state = f"partial download: {human_bytes(part.done)} of {human_bytes(part.total)}"
            _append(table, [f"{part.repo}/{part.filename}", "download", human_bytes(part.total), state],
                    key=("partial", part.folder))
        self._update_installed_buttons()
        self._fill_catalog()

    def selected_key(self) -> tuple[str, str] | None:
        rows = self.installed_table.selectionModel().selectedRows()
        return self.installed_table.item(rows[0].row(), 0).data(Qt.UserRole) if rows else None

    def use_selected(self) -> None:
        key = self.selected_key()
        if key is not None and self._is_target(key):
            self.use_model(key)

    def use_model(self, key: tuple[str, str]) -> None:
        """Ask the main window to chat with this target and its paired drafters."""
        if key[0] == EMBEDDED:
            self.use_requested.emit("", ("", ""))   # the settings' name for the embedded default
            return
        drafters = paired_drafters(self.store, key[1])
        self.use_requested.emit(str(self.store.path_of(key[1])), drafters)
        paired = " with its drafters" if drafters[0] else " (no drafter installed for it)"
        self._say(f"Chatting with {key[1]}{paired}.", OK_STYLE)

    def import_gguf(self, path: str) -> DownloadRow:
        """Copy a local GGUF file into the store (a queue row with progress), then chat with it."""
        row = self.queue.add(f"Import {path}", partial(_import_gguf, self.store, path))
        self._imports.add(row)
        return row

    def _is_target(self, key: tuple[str, str]) -> bool:
        if key[0] == EMBEDDED:
            return True
        model = self.store.registry.get(key[1]) if key[0] == "model" else None
        return model is not None and model.kind == "target"

    def verify_selected(self) -> None:
        key = self.selected_key()
        if key is None or key[0] != "model":
            return
        model_id = key[1]
        self._say(f"Verifying {model_id}: reading every file…")
        self.tasks.submit(f"Verify {model_id}", lambda _p, _c: self.store.verify(model_id),
                          on_done=lambda _r: self._say(f"{model_id}: every file matches its recorded sha256.",
                                                       OK_STYLE),
                          on_error=self._say_error)

    def delete_selected(self) -> None:
        key = self.selected_key()
        if key is None or key[0] == EMBEDDED:
            return
        if not self.confirm(f"Delete {key[1]} and its files from this computer?"):
            return
        folder_or_id = key[1]
        self.delete_button.setEnabled(False)
        self.tasks.submit(f"Delete {folder_or_id}", lambda _p, _c: self.store.delete(folder_or_id),
                          on_done=lambda _r: (self.refresh(), self._say(f"Deleted {folder_or_id}.")),
                          on_error=lambda message: (self.refresh(), self._say_error(message)))

    def resume_selected(self) -> None:
        key = self.selected_key()
        if key is not None and key[0] == "partial" and key[1] in self.store.catalog.artifacts:
            self.install_artifact(key[1])

    def _update_installed_buttons(self) -> None:
        key = self.selected_key()
        self.use_button.setEnabled(key is not None and self._is_target(key))
        self.verify_button.setEnabled(key is not None and key[0] == "model")
        self.delete_button.setEnabled(key is not None and key[0] != EMBEDDED)  # part of the app
        # Only catalog artifacts know their full file list; a search download resumes from Search.
        self.resume_button.setEnabled(key is not None and key[0] == "partial"
                                      and key[1] in self.store.catalog.artifacts)

    # ---- catalog ---------------------------------------------------------------------------------------------

    def _fill_catalog(self) -> None:
        table = self.catalog_table
        table.setRowCount(0)
        installed = present_artifacts(self.store)
        for bundle in self.store.catalog.bundles.values():
            licenses = sorted({a.license for a in bundle.artifacts if a.license}) or ["not stated"]
            memory = human_bytes(bundle.min_memory_bytes)
            if self.memory_bytes is not None and bundle.min_memory_bytes > self.memory_bytes:
                memory += f" (this machine has {human_bytes(self.memory_bytes)})"
            # what chat needs is the target and its drafters; the classic draft serves one method only
            ready = all(a.id in installed for a in (bundle.target, bundle.drafter_block, bundle.drafter_vp))
            missing = [a for a in bundle.artifacts if a.id not in installed]
            state = "installed" if ready and not missing else (
                f"installed; {missing[0].name} is not" if ready else "")
            row = _append(table, [bundle.name, _bundle_size(bundle), ", ".join(licenses), memory, state],
                          key=("bundle", bundle.id))
            table.item(row, 0).setToolTip(bundle.description)
            label = "Install" if not ready else "Add the classic draft"
            button = QPushButton(label, clicked=lambda _checked=False, b=bundle.id: self.install_bundle(b))
            button.setEnabled(bool(missing))
            table.setCellWidget(row, 5, button)

    def install_bundle(self, bundle_id: str) -> list[DownloadRow]:
        """One queue row per artifact, so each has its own bar; the pair check runs once all are in."""
        bundle = self.store.catalog.bundles[bundle_id]
        self._bundles_to_check.add(bundle_id)
        here = present_artifacts(self.store)
        return [self.install_artifact(art.id, title=f"{bundle.name}: {art.name}") for art in bundle.artifacts
                if art.id not in here]

    def install_artifact(self, artifact_id: str, *, title: str | None = None) -> DownloadRow:
        art = self.store.catalog.artifacts[artifact_id]
        work = partial(_install_artifact, self.store, artifact_id)
        return self.queue.add(title or art.name, work)

    def _on_download_finished(self, row: DownloadRow, result: object) -> None:
        self.refresh()
        if row in self._imports:
            self._imports.discard(row)
            self.use_model(("model", result.id))
        installed = present_artifacts(self.store)
        for bundle_id in sorted(self._bundles_to_check):
            bundle = self.store.catalog.bundles[bundle_id]
            if all(a.id in installed for a in bundle.artifacts):
                self._bundles_to_check.discard(bundle_id)
                self.tasks.submit(f"Check {bundle_id}", partial(_check_bundle, self.store, bundle),
                                  on_done=lambda _r, name=bundle.name: self._say(f"{name} is installed and ready.",
                                                                                 OK_STYLE),
                                  on_error=self._say_error)

    # ---- search ------------------------------------------------------------------------------------------------

    def search(self) -> None:
        query = self.search_edit.text().strip()
        if self.store.is_offline:
            self._say(OFFLINE_SEARCH)
            return
        if not query:
            return
        self.search_button.setEnabled(False)
        self._say(f"Searching Hugging Face for {query!r}…")
        endpoint, offline, memory = self.store.endpoint, self.store.offline, self.memory_bytes
        self.tasks.submit(f"Search {query}",
                          lambda _p, _c: search_gguf(query, endpoint=endpoint, app_offline=offline,
                                                     memory_bytes=memory),
                          on_done=self._show_results, on_error=self._search_failed)

    def _show_results(self, result: SearchResult) -> None:
        self._sync_offline_switch()
        self.results.clear()
        for repo in result.repos:
            top = QTreeWidgetItem([repo.repo, "", "", f"{repo.downloads or 0:,}"])
            for quant in repo.quants:
                fits = {True: "fits in memory", False: "too large for this machine", None: "memory unknown"}
                child = QTreeWidgetItem([quant.label + (f" ({len(quant.files)} files)" if len(quant.files) > 1
                                                        else ""),
                                         human_bytes(quant.size) if quant.size is not None else "?",
                                         fits[quant.fits], ""])
                child.setData(0, Qt.UserRole, (repo.repo, quant.files))
                child.setToolTip(0, "\n".join(quant.files))
                if quant.fits is not None:
                    child.setForeground(2, Qt.darkGreen if quant.fits else Qt.red)
                top.addChild(child)
            self.results.addTopLevelItem(top)
            top.setExpanded(True)
        found = f"{len(result.repos)} GGUF repositories found."
        self._say(" ".join([found, *result.refused]))

    def _search_failed(self, message: str) -> None:
        self._sync_offline_switch()
        self._say_error(message)

    def selected_quant(self) -> tuple[str, tuple[str, ...]] | None:
        items = self.results.selectedItems()
        return items[0].data(0, Qt.UserRole) if items else None

    def install_selected_quant(self) -> DownloadRow | None:
        chosen = self.selected_quant()
        if chosen is None:
            return None
        repo, files = chosen
        name = files[0].rsplit("/", 1)[-1]
        return self.queue.add(f"{repo}: {name}", partial(_install_gguf, self.store, repo, files))

    def _update_search_buttons(self) -> None:
        self.install_quant_button.setEnabled(self.selected_quant() is not None)

    # ---- messages and lifetime -------------------------------------------------------------------------------

    def _say(self, text: str, style: str = "") -> None:
        self.notice.setStyleSheet(style)
        self.notice.setText(text)

    def _say_error(self, message: str) -> None:
        self._say(message, ERROR_STYLE)

    def _ask(self, question: str) -> bool:
        return QMessageBox.question(self, "Models", question) == QMessageBox.Yes

    def shutdown(self) -> None:
        """Cancel downloads (their partial files stay for a resume) and join both worker threads."""
        self.downloads.shutdown()
        self.tasks.shutdown()


# ---- work run on the worker threads -----------------------------------------------------------------------


def _install_artifact(store: ModelStore, artifact_id: str, progress, cancel):
    return store.install(artifact_id, progress=progress, cancel=cancel)


def _import_gguf(store: ModelStore, path: str, progress, cancel):
    return store.import_gguf(Path(path), progress=progress, cancel=cancel)


def _install_gguf(store: ModelStore, repo: str, files: tuple[str, ...], progress, cancel):
    return store.install_hf_gguf(repo, files, progress=progress, cancel=cancel)


def _check_bundle(store: ModelStore, bundle: Bundle, _progress, _cancel) -> None:
    if store.registry.get(bundle.target.id) is None:
        return  # the embedded default, assembled by the app: its drafters ship with it
    for drafter in {bundle.drafter_block.id, bundle.drafter_vp.id}:
        store.check_pair(bundle.target.id, drafter)


# ---- small widget helpers ------------------------------------------------------------------------------------


def _bundle_size(bundle: Bundle) -> str:
    """The catalog leaves sizes it cannot know offline unset; the Hub tells them at download time."""
    sizes = [f.size for a in bundle.artifacts for f in a.files]
    known = human_bytes(sum(s for s in sizes if s is not None))
    return known if None not in sizes else f"{known} + files of unknown size"


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().hide()
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
    return table


def _append(table: QTableWidget, cells: list[str], *, key: tuple[str, str]) -> int:
    row = table.rowCount()
    table.insertRow(row)
    for column, text in enumerate(cells):
        table.setItem(row, column, QTableWidgetItem(text))
    table.item(row, 0).setData(Qt.UserRole, key)
    return row


def _page(main: QWidget, below: QWidget | QHBoxLayout | None = None) -> QWidget:
    page = QWidget()
    column = QVBoxLayout(page)
    column.addWidget(main, 1)
    if isinstance(below, QHBoxLayout):
        column.addLayout(below)
    elif below is not None:
        column.addWidget(below)
    return page
