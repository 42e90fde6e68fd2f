"""Draws the app icon with Qt: `python packaging/make_icon.py OUT.(png|ico) [SIZE]`.

Drawn from shapes, not shipped as artwork, so every size the installers want (the .icns iconset on
macOS, the .ico on Windows) is sharp; assets/icon.png is this script's 256 px output. Two chevrons:
two drafters racing ahead of the target.
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # build machines may have no display

from PySide6.QtCore import QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QGuiApplication, QImage, QLinearGradient, QPainter, QPainterPath, QPen  # noqa: E402


def draw(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.scale(size / 100, size / 100)  # draw on a 100 x 100 canvas

    background = QLinearGradient(0, 0, 100, 100)
    background.setColorAt(0, QColor("#2563eb"))
    background.setColorAt(1, QColor("#7c3aed"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(background)
    p.drawRoundedRect(QRectF(4, 4, 92, 92), 20, 20)

    for x, color in ((26, "#bfdbfe"), (48, "#ffffff")):
        chevron = QPainterPath(QPointF(x, 28))
        chevron.lineTo(x + 22, 50)
        chevron.lineTo(x, 72)
        p.setPen(QPen(QColor(color), 11, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(chevron)
    p.end()
    return image


def main() -> int:
    out, size = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 256
    _app = QGuiApplication(sys.argv[:1])
    if not draw(size).save(out):
        print(f"make_icon: cannot write {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
