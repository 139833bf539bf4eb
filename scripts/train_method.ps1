# Shared body of the per-method PowerShell launchers (scripts/train_<method>.ps1, twins of the .sh
# scripts): runs main.py with the method's seed recipe config/seed_<method>.yaml (only what differs from
# the schema's defaults), the data, model and save-dir parameters that are set, then the caller's flags
# (which come last, so they win). A launcher calls:
#   & (Join-Path $PSScriptRoot "train_method.ps1") -Method dskd -TrainData $TrainData -Student $Student `
#       -Teacher $Teacher -SaveDir $SaveDir -Extra $args
param(
    [string]$Method,
    [string]$TrainData,
    [string]$Student,
    [string]$Teacher,
    [string]$SaveDir,
    [string[]]$Before = @(),
    $Extra = @()
)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
$Py = if (Test-Path ".venv\Scripts\python.exe") { ".venv\Scripts\python.exe" } else { "python" }
$Flags = @("--config", "config/seed_$Method.yaml")
if ($TrainData) { $Flags += @("--train_data_path", $TrainData) }
if ($Student) { $Flags += @("--student_model_name", $Student) }
if ($Teacher) { $Flags += @("--teacher_model_name", $Teacher) }
if ($SaveDir) { $Flags += @("--save_dir", $SaveDir) }
& $Py main.py @Flags @Before @Extra
exit $LASTEXITCODE
