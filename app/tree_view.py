"""The candidate trie of the latest step that had drafts: one tree row per node, its proposer, confidence, and the path the
target accepted (plus the bonus token it sampled itself)."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from app.markdown import PROVENANCE_LABELS
from app.worker import StepView

ACCEPTED_BRUSH = QBrush(QColor("#dafbe1"))
REDRAW_MS = 200  # rebuilding the tree at every step of a fast GPU run would starve the GUI thread


def token_label(text: str) -> str:
    """Quoted, with escapes, so leading spaces and newlines inside a token stay visible."""
    return repr(text)


class TreeView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel("No step yet.")
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Token", "Source", "Confidence", ""])
        self.tree.setUniformRowHeights(True)
        self.bonus = QLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.bonus)
        self.items: list[QTreeWidgetItem] = []  # by trie node id
        self._latest: StepView | None = None
        self._drafted = False
        self._timer = QTimer(self, singleShot=True, interval=REDRAW_MS, timeout=self.flush)

    def begin(self) -> None:
        """A new answer: its first step is drawn whatever it holds."""
        self._latest = None
        self._drafted = False

    def clear(self) -> None:
        """A new chat: no step to show."""
        self.begin()
        self._timer.stop()
        self.tree.clear()
        self.items = []
        self.summary.setText("No step yet.")
        self.bonus.setText("")

    def show_step(self, view: StepView) -> None:
        # Keep the latest step that had drafts on screen: with lookup most steps propose nothing,
        # and a lone anchor says little about what the target accepted.
        if view.stats.proposed == 0 and self._drafted:
            return
        self._drafted = self._drafted or view.stats.proposed > 0
        self._latest = view
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        self._timer.stop()
        if self._latest is not None:
            self._draw(self._latest)
            self._latest = None

    def _draw(self, view: StepView) -> None:
        stats, tree = view.stats, view.stats.tree
        inner = set(tree.parents)
        rows = sum(1 for node in range(len(tree.tokens)) if node not in inner)
        accepted = set(tree.accepted)
        self.summary.setText(
            f"Step {stats.step}: {stats.tree_nodes} nodes in {rows} row{'s' if rows != 1 else ''}, "
            f"{stats.accepted} of {stats.proposed} drafts accepted, {stats.emitted} emitted")
        self.tree.clear()
        self.items = []
        bold = QFont()
        bold.setBold(True)
        for node, (text, parent, source, conf) in enumerate(
                zip(view.node_texts, tree.parents, tree.sources, tree.confidences)):
            label = "anchor" if parent < 0 else PROVENANCE_LABELS.get(source, source)
            item = QTreeWidgetItem([token_label(text), label, f"{conf:.2f}" if parent >= 0 else "",
                                    "✓ accepted" if node in accepted and parent >= 0 else ""])
            if node in accepted:
                for col in range(4):
                    item.setBackground(col, ACCEPTED_BRUSH)
                    item.setFont(col, bold)
            if parent < 0:
                self.tree.addTopLevelItem(item)
            else:
                self.items[parent].addChild(item)
            self.items.append(item)
        self.tree.expandAll()
        for col in range(4):
            self.tree.resizeColumnToContents(col)
        bonus = [text for text, source in view.emitted[len(tree.accepted) - 1:]]
        self.bonus.setText(f"Target's own next token: {token_label(''.join(bonus))}" if bonus else "")

    def accepted_path(self) -> list[str]:
        """Token texts of the accepted nodes, root first (for tests and accessibility)."""
        out, item = [], self.tree.topLevelItem(0)
        while item is not None:
            out.append(item.text(0))
            item = next((item.child(i) for i in range(item.childCount())
                         if item.child(i).text(3)), None)
        return out
