"""`/sesguard`: the slash command's sub-commands (`listeners`) and their answers (`blocks`)."""
