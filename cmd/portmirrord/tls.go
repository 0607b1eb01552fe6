package main

import (
	"crypto/tls"
	"errors"
	"fmt"

	"portmirror/internal/tlsfiles"
)

// TLSConfigs is the daemon's TLS material, read at start from the files the --*-tls-* flags name; each part is
// nil where its flags are not given. Reload re-reads every file (SIGHUP): new handshakes use the new material,
// open connections keep theirs.
type TLSConfigs struct {
	// OpenFlow is the OpenFlow listener's: switches must present a certificate the --openflow-tls-ca signed.
	OpenFlow *tls.Config
	// OVSDB is the client side of the same files, for hosts whose ovsdbAddress is ssl:IP:PORT.
	OVSDB *tls.Config
	// API is the HTTPS server's (HTTP/2 and HTTP/1.1); with --api-tls-client-ca it requires client certificates.
	API *tls.Config
	// Cluster is the controllers' mutual TLS for replication and forwarding (--cluster-tls-*).
	Cluster *ClusterTLS

	sets []*tlsfiles.Set
}

// ClusterTLS is the pair of configurations of mutual TLS between controllers: a node serves with Server (it
// requires a client certificate the cluster CA signed) and dials its peers with Client (it presents its own
// certificate and accepts a peer whose certificate the cluster CA signed, whatever its name).
type ClusterTLS struct {
	Server *tls.Config
	Client *tls.Config
}

// Reload re-reads every file. A file that fails leaves its part as it was; the error names the files.
func (t *TLSConfigs) Reload() error {
	var errs []error
	for _, s := range t.sets {
		if err := s.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tlsFlags names one group of TLS flags and keys.
type tlsFlags struct {
	group         string // "openflow", "api", "cluster"
	cert, key, ca string // the files
	caName        string // the flag of the CA: "tls-ca" or "tls-client-ca"
	caRequired    bool   // the CA must be given with the certificate
}

// loadTLS reads the files of every group that is configured, checking that each group is complete. An error
// names the flag (and key) of the file or setting at fault.
func (c *Config) loadTLS() (TLSConfigs, error) {
	var out TLSConfigs
	bad := func(flag, format string, a ...any) error {
		key := ""
		for _, r := range flag {
			if r == '-' {
				r = '_'
			}
			key += string(r)
		}
		note := ""
		if c.ConfigFile != "" {
			note = " (config file " + c.ConfigFile + ")"
		}
		return fmt.Errorf("flag --%s / key %s%s: %s", flag, key, note, fmt.Sprintf(format, a...))
	}
	load := func(g tlsFlags) (*tlsfiles.Set, error) {
		if g.cert == "" && g.key == "" && g.ca == "" {
			return nil, nil
		}
		switch {
		case g.cert == "":
			return nil, bad(g.group+"-tls-cert", "missing: --%s-tls-key and --%s-%s need a certificate", g.group, g.group, g.caName)
		case g.key == "":
			return nil, bad(g.group+"-tls-key", "missing: --%s-tls-cert needs its private key", g.group)
		case g.ca == "" && g.caRequired:
			return nil, bad(g.group+"-"+g.caName, "missing: the CA that signs the peers' certificates is required with --%s-tls-cert", g.group)
		}
		set, err := tlsfiles.Load(tlsfiles.Files{Cert: g.cert, Key: g.key, CA: g.ca})
		if err != nil {
			var fe *tlsfiles.FileError
			if errors.As(err, &fe) {
				flag := map[tlsfiles.Which]string{tlsfiles.Cert: "tls-cert", tlsfiles.Key: "tls-key", tlsfiles.CA: g.caName}[fe.Which]
				return nil, bad(g.group+"-"+flag, "%v", err)
			}
			return nil, bad(g.group+"-tls-cert", "%v", err)
		}
		out.sets = append(out.sets, set)
		return set, nil
	}

	of, err := load(tlsFlags{group: "openflow", cert: c.OpenFlowTLSCert, key: c.OpenFlowTLSKey, ca: c.OpenFlowTLSCA, caName: "tls-ca", caRequired: true})
	if err != nil {
		return out, err
	}
	if of != nil {
		if out.OpenFlow, err = of.Server(tlsfiles.RequireClientCert, nil); err != nil {
			return out, bad("openflow-tls-ca", "%v", err)
		}
		if out.OVSDB, err = of.Client(); err != nil {
			return out, bad("openflow-tls-ca", "%v", err)
		}
	}

	api, err := load(tlsFlags{group: "api", cert: c.APITLSCert, key: c.APITLSKey, ca: c.APITLSClientCA, caName: "tls-client-ca"})
	if err != nil {
		return out, err
	}
	if api != nil {
		auth := tlsfiles.NoClientCert
		if c.APITLSClientCA != "" {
			auth = tlsfiles.RequireClientCert
		}
		if out.API, err = api.Server(auth, []string{"h2", "http/1.1"}); err != nil {
			return out, bad("api-tls-client-ca", "%v", err)
		}
	}

	cl, err := load(tlsFlags{group: "cluster", cert: c.ClusterTLSCert, key: c.ClusterTLSKey, ca: c.ClusterTLSCA, caName: "tls-ca", caRequired: true})
	if err != nil {
		return out, err
	}
	if cl != nil {
		out.Cluster = &ClusterTLS{}
		if out.Cluster.Server, err = cl.Server(tlsfiles.RequireClientCert, nil); err != nil {
			return out, bad("cluster-tls-ca", "%v", err)
		}
		if out.Cluster.Client, err = cl.Client(); err != nil {
			return out, bad("cluster-tls-ca", "%v", err)
		}
	}
	return out, nil
}
