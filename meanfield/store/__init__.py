"""What a run leaves: sealed files, the Result and its folder, checkpoints, and the folder's lock."""
