"""The mount daemon: runs FUSE mounts, answers the control socket, cleans up after itself."""
