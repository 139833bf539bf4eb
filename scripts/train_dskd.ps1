# DSKD (dual-space KD through cross-model attention; the teacher runs online on every batch), PowerShell.
# Override with parameters or append flags:
#   .\scripts\train_dskd.ps1 -Student sentence-transformers/all-MiniLM-L6-v2 --student_num_layers 2 --epochs 1
param(
    [string]$TrainData = "",
    [string]$Student = "",
    [string]$Teacher = "",
    [string]$SaveDir = ""
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method dskd -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args
exit $LASTEXITCODE
