# Stella (Jasper & Stella, arXiv 2412.19048) with the published settings (PowerShell): three stages
# from the teacher cache (the same cache TALAS builds). Override with parameters or append flags:
#   .\scripts\train_stella.ps1 -Teacher path\to\teacher -Dims 384,192,96 --stage1_steps 500
# Dims (Matryoshka widths) must not exceed the teacher's width (1024 for Qwen3-Embedding-0.6B).
param(
    [string]$TrainData = "",
    [string]$Student = "",
    [string]$Teacher = "",
    [string]$SaveDir = "",
    [string]$Dims = ""
)
$ErrorActionPreference = "Stop"
$Before = @()
if ($Dims) { $Before = @("--matryoshka_dims", $Dims) }
& (Join-Path $PSScriptRoot "train_method.ps1") -Method stella -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Before $Before -Extra $args
exit $LASTEXITCODE
