package e2e

func cleanupDaemonBuild() {}
