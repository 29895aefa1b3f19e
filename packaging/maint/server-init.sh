	# A new server's store, key, certificate and admin, once. The output (pin and the admin's
	# password) goes to a file only root can read, for the operator to read once and delete.
	if [ ! -e @STATE@/tessera.db ]; then
		first=@STATE@/initial-admin.txt
		if (umask 077; runuser -u @USER@ -- /usr/bin/tessera-server init --data @STATE@ >"$first.new"); then
			mv "$first.new" "$first"
			echo "tessera-server: a new server in @STATE@; its pin and admin password are in $first (delete it once read)"
		else
			rm -f "$first.new"
			echo "tessera-server: 'tessera-server init --data @STATE@' failed" >&2
			exit 1
		fi
	fi
