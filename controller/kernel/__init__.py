"""Low-level kernel access shared by observe/ and execute/: namespaces and netlink sockets."""
