/*
 * VLAN QoS maps from C: set on a VLAN builder and on an existing VLAN, read back, checked
 * against the library's rules (0..7 priorities, VLANs only, NULL arrays). Needs root and a
 * kernel with 8021q: without it (exit 77) `cargo xtask c-test` runs it in the test VM.
 * Everything lives in a namespace this test creates.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#include "check.h"

/* Whether `link`'s map (ingress or egress) is exactly `want[0..n]`. */
static int map_is(const underlay_link *link, int ingress, const underlay_vlan_qos_mapping *want,
                  size_t n) {
  underlay_vlan_qos_mapping got[16];
  size_t count = ingress ? underlay_link_vlan_ingress_qos(link, got, 16)
                         : underlay_link_vlan_egress_qos(link, got, 16);
  if (count != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (got[i].from != want[i].from || got[i].to != want[i].to)
      return 0;
  return 1;
}

/* Returns 77 when the kernel has no 8021q (the caller cleans up and exits with it). */
static int test_qos(const underlay_handle *h) {
  underlay_link_builder *b = NULL;
  underlay_link *link = NULL;
  const underlay_vlan_qos_mapping ingress[] = {{1, 2}, {4, 5}};
  const underlay_vlan_qos_mapping egress[] = {{3, 6}, {7, 1}};
  const underlay_vlan_qos_mapping bad[] = {{8, 1}};

  /* NULL arrays with a count, and settings for other kinds, are refused. */
  OK(underlay_link_builder_vlan(h, "nic0", 10, &b));
  EXPECT(underlay_link_builder_vlan_qos(b, NULL, 1, NULL, 0), UNDERLAY_RESULT_NULL_PARAMETER,
         "`ingress`");
  EXPECT(underlay_link_builder_vlan_qos(b, NULL, 0, NULL, 2), UNDERLAY_RESULT_NULL_PARAMETER,
         "`egress`");
  OK(underlay_link_builder_vlan_qos(b, bad, 1, NULL, 0));
  EXPECT(underlay_link_builder_execute(b, &link), UNDERLAY_RESULT_INVALID_ARGUMENT, "0..7");
  TRUE(link == NULL);
  underlay_link_builder_free(b);
  EXPECT(underlay_link_builder_vlan_qos(NULL, ingress, 2, NULL, 0),
         UNDERLAY_RESULT_NULL_PARAMETER, "`builder`");

  /* Set on create, read back. */
  b = NULL;
  OK(underlay_link_builder_vlan(h, "nic0", 10, &b));
  OK(underlay_link_builder_vlan_qos(b, ingress, 2, egress, 2));
  underlay_result r = underlay_link_builder_execute(b, &link);
  underlay_link_builder_free(b);
  if (r == UNDERLAY_RESULT_KERNEL_UNSUPPORTED) {
    printf("skipped: this kernel has no 8021q (the VLAN cases run in the test VM)\n");
    return 77;
  }
  EXPECT(r, UNDERLAY_RESULT_OK, NULL);
  if (link == NULL)
    return 1;
  TRUE(map_is(link, 1, ingress, 2));
  TRUE(map_is(link, 0, egress, 2));
  TRUE(underlay_link_vlan_ingress_qos(link, NULL, 0) == 2);
  underlay_link_free(link);

  /* Changed on the existing VLAN: entries mapped to 0 go, others stay. */
  const underlay_vlan_qos_mapping more_in[] = {{1, 0}, {6, 7}};
  const underlay_vlan_qos_mapping more_out[] = {{3, 0}, {2, 4}};
  OK(underlay_handle_vlan_set_qos(h, "nic0.10", more_in, 2, more_out, 2));
  link = NULL;
  OK(underlay_handle_link_get(h, "nic0.10", &link));
  const underlay_vlan_qos_mapping want_in[] = {{4, 5}, {6, 7}};
  const underlay_vlan_qos_mapping want_out[] = {{2, 4}, {7, 1}};
  TRUE(map_is(link, 1, want_in, 2));
  TRUE(map_is(link, 0, want_out, 2));
  underlay_link_free(link);

  /* Refusals change nothing. */
  const underlay_vlan_qos_mapping bad_out[] = {{1, 8}};
  EXPECT(underlay_handle_vlan_set_qos(h, "nic0.10", NULL, 0, bad_out, 1),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "0..7");
  EXPECT(underlay_handle_vlan_set_qos(h, "nic0", want_in, 2, NULL, 0),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "not a VLAN");
  EXPECT(underlay_handle_vlan_set_qos(h, "nosuch", want_in, 2, NULL, 0),
         UNDERLAY_RESULT_NOT_FOUND, NULL);
  EXPECT(underlay_handle_vlan_set_qos(h, "nic0.10", NULL, 3, NULL, 0),
         UNDERLAY_RESULT_NULL_PARAMETER, "`ingress`");
  EXPECT(underlay_handle_vlan_set_qos(NULL, "nic0.10", want_in, 2, NULL, 0),
         UNDERLAY_RESULT_NULL_PARAMETER, "`handle`");
  link = NULL;
  OK(underlay_handle_link_get(h, "nic0.10", &link));
  TRUE(map_is(link, 1, want_in, 2));
  underlay_link_free(link);

  /* Other kinds and NULL read as no map. */
  link = NULL;
  OK(underlay_handle_link_get(h, "nic0", &link));
  TRUE(underlay_link_vlan_ingress_qos(link, NULL, 0) == 0);
  TRUE(underlay_link_vlan_egress_qos(link, NULL, 0) == 0);
  underlay_link_free(link);
  TRUE(underlay_link_vlan_ingress_qos(NULL, NULL, 0) == 0);
  return 0;
}

int main(void) {
  if (geteuid() != 0) {
    printf("SKIPPED: test_vlan_qos needs root (namespaces, links); CI runs it as root\n");
    return 0;
  }
  char name[64];
  snprintf(name, sizeof name, "ulc-qos-%d", (int)getpid());
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_link_builder *b = NULL;
  if (underlay_netns_create(name, &ns) != UNDERLAY_RESULT_OK ||
      underlay_handle_for_netns(ns, &h) != UNDERLAY_RESULT_OK) {
    fprintf(stderr, "setup: %s\n", underlay_last_error_message());
    underlay_netns_delete(name);
    return 1;
  }
  underlay_link *veth = NULL;
  OK(underlay_link_builder_veth(h, "nic0", "nic0p", &b));
  OK(underlay_link_builder_set_up(b));
  OK(underlay_link_builder_execute(b, &veth));
  underlay_link_builder_free(b);
  underlay_link_free(veth);
  int skipped = test_qos(h) == 77;
  underlay_handle_free(h);
  underlay_netns_free(ns);
  underlay_netns_delete(name);
  if (skipped && failures == 0)
    return 77;
  printf("test_vlan_qos: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
