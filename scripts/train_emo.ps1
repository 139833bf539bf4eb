# EMO (attention-relation CKA + optimal transport between token states; the teacher runs online on
# every batch with eager attention), PowerShell. Override with parameters or append flags:
#   .\scripts\train_emo.ps1 -Student sentence-transformers/all-MiniLM-L6-v2 --student_num_layers 2 --epochs 1
param(
    [string]$TrainData = "",
    [string]$Student = "",
    [string]$Teacher = "",
    [string]$SaveDir = ""
)
$ErrorActionPreference = "Stop"
& (Join-Path $PSScriptRoot "train_method.ps1") -Method emo -TrainData $TrainData -Student $Student `
    -Teacher $Teacher -SaveDir $SaveDir -Extra $args
exit $LASTEXITCODE
