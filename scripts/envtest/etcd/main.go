// Command etcd is the etcd server for the envtest control plane, built from the
// go.etcd.io/etcd/server/v3 module at the release Kubernetes pairs with. The
// upstream etcd binary's main does exactly this one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
