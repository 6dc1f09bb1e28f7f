"""The alert: its message (`blocks`) and keeping the posted message current in Slack (`message`)."""
