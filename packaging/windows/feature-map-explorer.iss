; Inno Setup script: the Windows installer around the PyInstaller folder.
;   ISCC /DAppVersion=0.1.0 /DSourceDir=...\dist\feature-map-explorer /O...\dist feature-map-explorer.iss
; Installs per user by default (no administrator needed; students' machines), with a Start menu
; entry, an optional desktop icon and an uninstaller.
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\feature-map-explorer"
#endif

[Setup]
AppId={{6B0E3A52-6C1F-4E55-9C1D-3F0D7E1A9B21}
AppName=Feature Map Explorer
AppVersion={#AppVersion}
AppPublisher=Feature Map Explorer
DefaultDirName={autopf}\Feature Map Explorer
DefaultGroupName=Feature Map Explorer
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputBaseFilename=feature-map-explorer-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\feature-map-explorer.ico
UninstallDisplayIcon={app}\feature-map-explorer.exe
Compression=lzma2/fast
SolidCompression=no
WizardStyle=modern
ChangesAssociations=no

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Feature Map Explorer"; Filename: "{app}\feature-map-explorer.exe"
Name: "{group}\Feature Map Explorer self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\feature-map-explorer-cli.exe"" --self-test"
Name: "{group}\{cm:UninstallProgram,Feature Map Explorer}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Feature Map Explorer"; Filename: "{app}\feature-map-explorer.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\feature-map-explorer.exe"; Description: "{cm:LaunchProgram,Feature Map Explorer}"; Flags: nowait postinstall skipifsilent
