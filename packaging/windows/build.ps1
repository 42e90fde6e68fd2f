# Builds the Windows bundle, dist\d2sd-desktop\ and dist\d2sd-desktop-VERSION-windows-x64.zip, and
# smoke-tests it headless: the Windows counterpart of packaging/build.sh (`make package`).
# Needs Python 3.10+ (the py launcher), CMake and the Visual Studio C++ Build Tools. From the repository:
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")

$venv = "build\package-venv"
$wheels = "build\wheels"
$py = "$venv\Scripts\python.exe"
$llama = (Select-String -Path pyproject.toml -Pattern '"(llama-cpp-python==[^"]+)"').Matches[0].Groups[1].Value
$version = (Select-String -Path pyproject.toml -Pattern '^version = "(.+)"').Matches[0].Groups[1].Value

# Native programs do not stop the script on failure by themselves.
function Invoke-Checked {
    $exe, $rest = $args
    & $exe @rest
    if ($LASTEXITCODE -ne 0) { throw "failed ($LASTEXITCODE): $args" }
}

# 1. llama-cpp-python from source, once (build\wheels is the cache). No -march=native: every x86 CPU
#    variant is built and the bundle loads the best one at start (packaging\rthook_ggml_backends.py).
#    --no-cache-dir keeps pip from reusing a native build of the same version from its wheel cache.
$env:CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF"
if (-not (Get-ChildItem "$wheels\llama_cpp_python-*.whl" -ErrorAction SilentlyContinue)) {
    if (-not (Test-Path $py)) { Invoke-Checked py -3 -m venv $venv }
    Invoke-Checked $py -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w $wheels $llama
}
$wheel = (Get-ChildItem "$wheels\llama_cpp_python-*.whl").FullName

# 2. The build venv, made afresh when the wheel or pyproject.toml is newer than it.
$stamp = "$venv\.installed"
$stale = -not (Test-Path $stamp) -or
    (Get-Item $wheel).LastWriteTime -gt (Get-Item $stamp).LastWriteTime -or
    (Get-Item pyproject.toml).LastWriteTime -gt (Get-Item $stamp).LastWriteTime
if ($stale) {
    if (Test-Path $venv) { Remove-Item -Recurse -Force $venv }
    Invoke-Checked py -3 -m venv $venv
    Invoke-Checked $py -m pip install -q --upgrade pip
    Invoke-Checked $py -m pip install -q $wheel
    Invoke-Checked $py -m pip install -q -e ".[package]"
    New-Item $stamp -ItemType File | Out-Null
}

# 3. The bundle, with its icon drawn at build time.
New-Item build\icon -ItemType Directory -Force | Out-Null
Invoke-Checked $py packaging\make_icon.py build\icon\d2sd-desktop.ico 256
Invoke-Checked "$venv\Scripts\pyinstaller.exe" --noconfirm --log-level WARN --distpath dist `
    --workpath build\pyinstaller packaging\d2sd-desktop.spec

# 4. Smoke test: started offscreen from another folder, the bundle loads the tiny test model and generates.
New-Item build\smoke -ItemType Directory -Force | Out-Null
Invoke-Checked $py -c "import sys; from pathlib import Path; from tests.tiny_gguf import write_tiny_gguf; write_tiny_gguf(Path(sys.argv[1]))" build\smoke\tiny.gguf
$env:QT_QPA_PLATFORM = "offscreen"
Push-Location build\smoke
try { Invoke-Checked ..\..\dist\d2sd-desktop\d2sd-desktop.exe --smoke-test tiny.gguf } finally { Pop-Location }
Remove-Item Env:QT_QPA_PLATFORM

# 5. The zip users download; unpack anywhere and run d2sd-desktop.exe.
$zip = "dist\d2sd-desktop-$version-windows-x64.zip"
Compress-Archive -Path dist\d2sd-desktop -DestinationPath $zip -Force
Write-Host "Built $zip"
