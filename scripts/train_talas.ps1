# TALAS with the seed's settings (PowerShell). Override with parameters or append flags:
#   .\scripts\train_talas.ps1 -TrainData data\AllNLI.csv --epochs 1
param(
    [string]$TrainData = "",
    [string]$Student = "",
    [string]$Teacher = "",
    [string]$SaveDir = ""
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method talas -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args
exit $LASTEXITCODE
