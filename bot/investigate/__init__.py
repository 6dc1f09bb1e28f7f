"""Investigate (SPEC §6): what else an alert's identity did, summarised in its thread; follow-on abuse
makes the alert critical. The button (`listeners`), `/sesguard investigate` (`command`), the run from the
request to the thread (`runs`, also the worker's automatic investigations), the messages (`blocks`)."""
