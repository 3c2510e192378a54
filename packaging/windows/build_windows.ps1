# Builds the Windows bundle and its installer from a clean virtual environment under build\.
#   ./packaging/windows/build_windows.ps1
# Writes dist\feature-map-explorer\ and dist\feature-map-explorer-VERSION-windows-x64-setup.exe.
# Needs Python 3.11+ (py launcher or python on PATH) and Inno Setup 6 (ISCC.exe; preinstalled on
# GitHub's windows-2022 runners, else: choco install innosetup).
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root

# Pinned, as in build_linux.sh: a new PyInstaller or hooks release changes what lands in the bundle.
$PyInstallerPin = "pyinstaller==6.22.3"
$HooksPin = "pyinstaller-hooks-contrib==2026.9"

$Venv = "build\venv-windows"
if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
python -m venv $Venv
$Py = "$Venv\Scripts\python.exe"
& $Py -m pip install -q --upgrade pip
& $Py -m pip install -q $PyInstallerPin $HooksPin
# PyPI's Windows torch is the CPU build; the app itself is analysed from this source tree.
& $Py -m pip install -q torch torchvision
$Deps = & $Py -c "import tomllib; print('\n'.join(d for d in tomllib.load(open('pyproject.toml','rb'))['project']['dependencies'] if not d.startswith('torch')))"
$Deps | Set-Content build\requirements-app.txt
& $Py -m pip install -q -r build\requirements-app.txt
if ($LASTEXITCODE -ne 0) { throw "pip failed" }

& $Py -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build\pyinstaller packaging\windows\feature-map-explorer.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
& dist\feature-map-explorer\feature-map-explorer-cli.exe --version

$Version = & $Py -c "import sys; sys.path.insert(0, 'packaging'); import bundle; print(bundle.version())"
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $Iscc "/DAppVersion=$Version" "/DSourceDir=$Root\dist\feature-map-explorer" "/O$Root\dist" packaging\windows\feature-map-explorer.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
