/*
 * Helpers shared by the scenario examples: namespaces that stand in for hosts, switches and
 * containers (deleted at exit, also after a failure), veth "cables", checks that print the
 * last error. Everything happens in namespaces the example creates; never on the host.
 */
#ifndef UNDERLAY_EXAMPLE_LAB_H
#define UNDERLAY_EXAMPLE_LAB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#define LAB_MAX 16
static char lab_names[LAB_MAX][64];
static int lab_count;
static char lab_root[128];

static void lab_cleanup(void) {
  for (int i = lab_count - 1; i >= 0; i--)
    underlay_netns_delete(lab_names[i]);
  if (lab_root[0] != 0) {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lab_root);
    if (system(cmd) != 0)
      fprintf(stderr, "cleanup of %s failed\n", lab_root);
  }
}

/* Exits (after cleanup) when `res` is a failure, with the library's message. */
static void check(underlay_result res, const char *what) {
  if (res != UNDERLAY_RESULT_OK) {
    fprintf(stderr, "%s: %s\n", what, underlay_last_error_message());
    lab_cleanup();
    exit(2);
  }
}

static void lab_init(const char *scenario) {
  if (geteuid() != 0) {
    fprintf(stderr, "%s: needs root (it creates network namespaces and links)\n", scenario);
    exit(2);
  }
  snprintf(lab_root, sizeof lab_root, "/tmp/ul-%s-%d", scenario, (int)getpid());
}

/* A named namespace "ul<label>-<pid>" with a handle inside it. */
static void lab_ns(const char *label, underlay_netns **ns, underlay_handle **h) {
  char *name = lab_names[lab_count];
  snprintf(name, 64, "ul%s-%d", label, (int)getpid());
  check(underlay_handle_create_netns(name, ns, h), "create namespace");
  lab_count++;
}

/* A state directory for one host's networks. */
static const char *lab_dir(const char *label) {
  static char dirs[LAB_MAX][160];
  static int n;
  snprintf(dirs[n], sizeof dirs[n], "%s/%s", lab_root, label);
  return dirs[n++];
}

/* A veth "cable": `port` on the switch's bridge br0, `ifname` in `ns`, both up. */
static void cable(underlay_handle *sw, const char *port, underlay_netns *ns, underlay_handle *h,
                  const char *ifname) {
  underlay_link_builder *b = NULL;
  underlay_link *l = NULL;
  check(underlay_link_builder_veth(sw, port, ifname, &b), "veth");
  check(underlay_link_builder_veth_peer_netns(b, ns), "veth peer namespace");
  check(underlay_link_builder_set_master(b, "br0"), "veth master");
  check(underlay_link_builder_set_up(b), "veth up");
  check(underlay_link_builder_execute(b, &l), "create cable");
  underlay_link_free(l);
  underlay_link_builder_free(b);
  check(underlay_handle_link_set_up(h, ifname, true), "cable up");
}

/* A switch: a namespace with a bridge br0, up. */
static underlay_handle *lab_switch(void) {
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_link_builder *b = NULL;
  underlay_link *l = NULL;
  lab_ns("sw", &ns, &h);
  check(underlay_link_builder_bridge(h, "br0", &b), "bridge");
  check(underlay_link_builder_set_up(b), "bridge up");
  check(underlay_link_builder_execute(b, &l), "create bridge");
  underlay_link_free(l);
  underlay_link_builder_free(b);
  underlay_netns_free(ns);
  return h;
}

/* One ping from `ns` to `ip`; prints the result and whether it is what the scenario says. */
static int ping_expect(underlay_netns *ns, const char *from, const char *ip, int want) {
  bool replied = false;
  check(underlay_netns_ping(ns, ip, 1500, &replied, NULL), "ping");
  printf("   %-28s -> %-16s %-4s%s\n", from, ip, replied ? "yes" : "no",
         (int)replied == want ? "" : "   !! the scenario says otherwise");
  return (int)replied == want;
}

/* A container: a namespace connected to `net` with `ip`. */
static underlay_netns *container(underlay_network *net, const char *label, const char *ip) {
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  lab_ns(label, &ns, &h);
  check(underlay_endpoint_spec_new(label, &es), "endpoint spec");
  check(underlay_endpoint_spec_add_ip(es, ip), "endpoint ip");
  check(underlay_endpoint_spec_set_target(es, h), "endpoint target");
  check(underlay_network_connect(net, ns, es, &ep), "connect");
  printf("   %s: %s on %s (%s)\n", label, underlay_endpoint_address(ep, 0),
         underlay_network_name(net), underlay_endpoint_mac(ep));
  underlay_endpoint_free(ep);
  underlay_endpoint_spec_free(es);
  underlay_handle_free(h);
  return ns;
}

#endif
