# Shared body of the per-method PowerShell launchers (scripts/train_<method>.ps1, twins of the .sh
# scripts): runs main.py with the method, the data, model and save-dir parameters, the method's
# defaults, then the caller's flags (which come last, so they override the defaults). A launcher calls:
#   & (Join-Path $PSScriptRoot "train_method.ps1") -Method dskd -TrainData $TrainData -Student $Student `
#       -Teacher $Teacher -SaveDir $SaveDir -Extra $args -Defaults @("--batch_size", "32")
param(
    [string]$Method,
    [string]$TrainData,
    [string]$Student,
    [string]$Teacher,
    [string]$SaveDir,
    [string[]]$Defaults = @(),
    $Extra = @()
)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
$Py = if (Test-Path ".venv\Scripts\python.exe") { ".venv\Scripts\python.exe" } else { "python" }
& $Py main.py --method $Method --train_data_path $TrainData --student_model_name $Student `
    --teacher_model_name $Teacher --save_dir $SaveDir @Defaults @Extra
exit $LASTEXITCODE
