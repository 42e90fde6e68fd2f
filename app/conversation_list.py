"""The left column: search box, new-chat button, and the conversations, most recent first."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QInputDialog, QLineEdit, QListWidget, QListWidgetItem, QMenu, QMessageBox,
                               QPushButton, QVBoxLayout, QWidget)

from engine.store.history import Conversation


class ConversationList(QWidget):
    selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    search_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # clicked carries `checked`, which new_requested does not take
        self.new_button = QPushButton("New chat", clicked=lambda: self.new_requested.emit())
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.search_changed.emit)
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemClicked.connect(lambda item: self.selected.emit(item.data(Qt.UserRole)))
        self.list.itemActivated.connect(lambda item: self.selected.emit(item.data(Qt.UserRole)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)

    def show_conversations(self, conversations: list[Conversation], current_id: int | None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for c in conversations:
            item = QListWidgetItem(c.title)
            item.setData(Qt.UserRole, c.id)
            item.setToolTip(c.title)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.mark_current(current_id)

    def mark_current(self, current_id: int | None) -> None:
        self.list.blockSignals(True)
        self.list.clearSelection()
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.UserRole) == current_id:
                self.list.setCurrentRow(i)
        self.list.blockSignals(False)

    def titles(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self._rename(item))
        menu.addAction("Delete", lambda: self._delete(item))
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def _rename(self, item: QListWidgetItem) -> None:
        title, ok = QInputDialog.getText(self, "Rename chat", "Title", text=item.text())
        if ok:
            self.rename_requested.emit(item.data(Qt.UserRole), title)

    def _delete(self, item: QListWidgetItem) -> None:
        answer = QMessageBox.question(self, "Delete chat", f"Delete “{item.text()}” and all its messages?")
        if answer == QMessageBox.Yes:
            self.delete_requested.emit(item.data(Qt.UserRole))
