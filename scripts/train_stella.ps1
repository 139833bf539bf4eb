# Stella (Jasper & Stella, arXiv 2412.19048) with the published settings (PowerShell): three stages
# from the teacher cache (the same cache TALAS builds). Override with parameters or append flags:
#   .\scripts\train_stella.ps1 -Teacher path\to\teacher -Dims 384,192,96 --stage1_steps 500
# Dims (Matryoshka widths) must not exceed the teacher's width (1024 for Qwen3-Embedding-0.6B).
param(
    [string]$TrainData = "data/train/distill_texts_clean.csv",
    [string]$Student = "bert-base-uncased",
    [string]$Teacher = "Qwen/Qwen3-Embedding-0.6B",
    [string]$SaveDir = "checkpoints/stella",
    [string]$Dims = "1024,512,256,128"
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method stella -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args -Defaults @(
    "--matryoshka_dims", $Dims, "--batch_size", "128", "--epochs", "1", "--stage1_lr", "1e-4",
    "--stage2_lr", "8e-5", "--stage3_lr", "8e-5", "--max_length", "256"
)
exit $LASTEXITCODE
