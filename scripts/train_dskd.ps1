# DSKD (dual-space KD through cross-model attention; the teacher runs online on every batch), PowerShell.
# Override with parameters or append flags:
#   .\scripts\train_dskd.ps1 -Student sentence-transformers/all-MiniLM-L6-v2 --student_num_layers 2 --epochs 1
param(
    [string]$TrainData = "data/train/distill_texts_clean.csv",
    [string]$Student = "bert-base-uncased",
    [string]$Teacher = "Qwen/Qwen3-Embedding-0.6B",
    [string]$SaveDir = "checkpoints/dskd"
)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
$Py = if (Test-Path ".venv\Scripts\python.exe") { ".venv\Scripts\python.exe" } else { "python" }
& $Py main.py `
    --method dskd `
    --train_data_path $TrainData `
    --student_model_name $Student `
    --teacher_model_name $Teacher `
    --save_dir $SaveDir `
    --batch_size 32 `
    --epochs 1 `
    --learning_rate 2e-4 `
    --max_length 128 `
    --student_pooling mean `
    --kd_rate 0.5 `
    --kd_temperature 2.0 `
    --projector_lr 1e-3 `
    @args
exit $LASTEXITCODE
