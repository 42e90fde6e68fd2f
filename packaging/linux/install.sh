#!/bin/sh
# Installs the unpacked bundle for the current user: the app into ~/.local/opt/d2sd-desktop, a
# d2sd-desktop command into ~/.local/bin, and the menu entry with its icon. Running it again updates;
# uninstalling is deleting the files it lists at the end.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
app=$HOME/.local/opt/d2sd-desktop
data=${XDG_DATA_HOME:-$HOME/.local/share}

rm -rf "$app"
mkdir -p "$app" "$HOME/.local/bin" "$data/applications" "$data/icons/hicolor/256x256/apps"
cp -a "$here/d2sd-desktop/." "$app/"
ln -sf "$app/d2sd-desktop" "$HOME/.local/bin/d2sd-desktop"
cp "$here/d2sd-desktop.png" "$data/icons/hicolor/256x256/apps/d2sd-desktop.png"
# An absolute Exec: desktop sessions often leave ~/.local/bin off their PATH.
sed "s|^Exec=.*|Exec=$app/d2sd-desktop|" "$here/d2sd-desktop.desktop" > "$data/applications/d2sd-desktop.desktop"

echo "Installed: $app $HOME/.local/bin/d2sd-desktop $data/applications/d2sd-desktop.desktop"
echo "           $data/icons/hicolor/256x256/apps/d2sd-desktop.png"
