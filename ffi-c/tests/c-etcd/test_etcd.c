/*
 * C tests of the etcd store (libunderlay_etcd, `pkg-config underlay-etcd`) against a real etcd
 * member that `cargo xtask c-test` starts and names in UNDERLAY_TEST_ETCD: connect (and its
 * failures), the store as an IPAM store, the per-host report, the per-host gc (another host's
 * leases untouched), members, slices, bad input. `etcdctl` is the independent oracle for
 * what is stored. Run under ASan/UBSan.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#ifndef UNDERLAY_ETCD
#error "build with `pkg-config --cflags underlay-etcd` (defines UNDERLAY_ETCD)"
#endif

#include "../c/check.h"

static const char *url;
static char prefix[64];

/* The number of keys etcd holds under our prefix, read with etcdctl (-1 on failure). */
static int etcd_keys(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "ETCDCTL_API=3 etcdctl --endpoints=%s get --prefix '%s' --keys-only 2>/dev/null",
           url, prefix);
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return -1;
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, p) != NULL)
    n += line[0] != '\n';
  return pclose(p) == 0 ? n : -1;
}

static underlay_etcd_store *connect_as(const char *host) {
  const char *eps[] = {url};
  underlay_etcd_config *cfg = NULL;
  underlay_etcd_store *st = NULL;
  OK(underlay_etcd_config_new(eps, 1, &cfg));
  OK(underlay_etcd_config_set_prefix(cfg, prefix));
  OK(underlay_etcd_config_set_host(cfg, host));
  OK(underlay_etcd_config_set_retry_for(cfg, 5000));
  OK(underlay_etcd_store_connect(cfg, &st));
  underlay_etcd_config_free(cfg);
  return st;
}

/* The records of `host` in a report of network `name`: their count, -1 if the host is absent. */
static int records_of(underlay_etcd_store *st, const char *name, const char *host,
                      const char *want_container) {
  underlay_etcd_report *rep = NULL;
  int found = -1;
  OK(underlay_etcd_store_addresses_by_host(st, name, &rep));
  for (size_t i = 0; i < underlay_etcd_report_host_count(rep); i++) {
    if (strcmp(underlay_etcd_report_host(rep, i), host) != 0)
      continue;
    const underlay_etcd_record_list *recs = underlay_etcd_report_records(rep, i);
    found = (int)underlay_etcd_record_list_count(recs);
    int seen = want_container == NULL;
    for (size_t j = 0; j < underlay_etcd_record_list_count(recs); j++) {
      const underlay_etcd_record *r = underlay_etcd_record_list_get(recs, j);
      TRUE(strncmp(underlay_etcd_record_address(r), "10.77.0.", 8) == 0);
      TRUE(strcmp(underlay_etcd_record_ifname(r), "eth0") == 0);
      if (want_container != NULL && strcmp(underlay_etcd_record_container_id(r), want_container) == 0)
        seen = 1;
    }
    TRUE(seen);
  }
  TRUE(underlay_etcd_report_host(rep, underlay_etcd_report_host_count(rep)) == NULL);
  underlay_etcd_report_free(rep);
  return found;
}

static void test_bad_input(void) {
  underlay_etcd_config *cfg = NULL;
  underlay_etcd_store *st = NULL;
  const char *eps[] = {"http://127.0.0.1:1"};
  EXPECT(underlay_etcd_config_new(NULL, 1, &cfg), UNDERLAY_RESULT_NULL_PARAMETER, "`endpoints`");
  EXPECT(underlay_etcd_config_new(eps, 0, &cfg), UNDERLAY_RESULT_INVALID_ARGUMENT, "endpoint");
  EXPECT(underlay_etcd_config_new(eps, 1, NULL), UNDERLAY_RESULT_NULL_PARAMETER, "`config_out`");
  TRUE(cfg == NULL);
  EXPECT(underlay_etcd_config_set_prefix(NULL, "/x/"), UNDERLAY_RESULT_NULL_PARAMETER, "`config`");
  EXPECT(underlay_etcd_store_connect(NULL, &st), UNDERLAY_RESULT_NULL_PARAMETER, "`config`");
  /* Nothing listens on port 1: a timeout that names the endpoint, soon. */
  OK(underlay_etcd_config_new(eps, 1, &cfg));
  OK(underlay_etcd_config_set_retry_for(cfg, 1000));
  OK(underlay_etcd_config_set_connect_timeout(cfg, 300));
  EXPECT(underlay_etcd_store_connect(cfg, &st), UNDERLAY_RESULT_TIMEOUT, "127.0.0.1:1");
  TRUE(st == NULL);
  underlay_etcd_config_free(cfg);
  underlay_etcd_config_free(NULL);
  underlay_etcd_store_free(NULL);
  underlay_etcd_report_free(NULL);
  underlay_etcd_record_list_free(NULL);
  underlay_etcd_slices_free(NULL);
  TRUE(underlay_etcd_store_host(NULL) == NULL && underlay_etcd_store_endpoint_count(NULL) == 0);
  TRUE(underlay_etcd_record_address(NULL) == NULL && underlay_etcd_report_host_count(NULL) == 0);
}

static void test_store(void) {
  underlay_etcd_store *a = connect_as("host-a"), *b = connect_as("host-b");
  underlay_ipam_store *sa = NULL, *sb = NULL;
  underlay_ipam_network *def = NULL;
  underlay_ipam *ia = NULL, *ib = NULL;
  underlay_lease *l = NULL;
  underlay_string_list *names = NULL;
  underlay_etcd_record_list *released = NULL;
  if (a == NULL || b == NULL)
    return;
  TRUE(strcmp(underlay_etcd_store_host(a), "host-a") == 0);
  TRUE(strcmp(underlay_etcd_store_prefix(a), prefix) == 0);
  TRUE(underlay_etcd_store_endpoint_count(a) == 1 &&
       strcmp(underlay_etcd_store_endpoint(a, 0), url) == 0 &&
       underlay_etcd_store_endpoint(a, 1) == NULL);
  TRUE(underlay_etcd_store_host_lease_ttl(a) == 0);
  TRUE(etcd_keys() == 0);

  OK(underlay_etcd_store_ipam_store(a, &sa));
  OK(underlay_etcd_store_ipam_store(b, &sb));
  OK(underlay_ipam_network_new("n1", &def));
  OK(underlay_ipam_network_add_pool(def, "10.77.0.0/24 gateway=10.77.0.1"));
  {
    bool created = false;
    OK(underlay_ipam_join(sa, def, &ia, &created));
    TRUE(created);
    OK(underlay_ipam_join(sb, def, &ib, &created));
    TRUE(!created);
  }
  TRUE(etcd_keys() > 0); /* the definition is in etcd */
  TRUE(ia != NULL && strcmp(underlay_ipam_name(ia), "n1") == 0 && underlay_ipam_pool_count(ia) == 1);
  if (ia == NULL || ib == NULL)
    goto out;
  OK(underlay_etcd_store_networks(a, &names));
  TRUE(underlay_string_list_count(names) == 1 &&
       strcmp(underlay_string_list_get(names, 0), "n1") == 0);
  underlay_string_list_free(names);
  names = NULL;
  OK(underlay_etcd_store_members(a, "n1", &names));
  TRUE(underlay_string_list_count(names) == 2 &&
       strcmp(underlay_string_list_get(names, 0), "host-a") == 0 &&
       strcmp(underlay_string_list_get(names, 1), "host-b") == 0);
  underlay_string_list_free(names);
  names = NULL;

  OK(underlay_ipam_allocate(ia, "c1", "eth0", NULL, &l));
  underlay_lease_free(l);
  OK(underlay_ipam_allocate(ia, "c2", "eth0", NULL, &l));
  underlay_lease_free(l);
  OK(underlay_ipam_allocate(ib, "c3", "eth0", NULL, &l));
  underlay_lease_free(l);
  TRUE(records_of(a, "n1", "host-a", "c2") == 2);
  TRUE(records_of(a, "n1", "host-b", "c3") == 1);

  /* host-a's gc keeps c1 and releases c2; host-b's c3 stays although not listed as valid. */
  {
    const char *ids[] = {"c1"}, *ifs[] = {"eth0"};
    OK(underlay_etcd_store_gc_host(a, "n1", "host-a", ids, ifs, 1, &released));
    TRUE(underlay_etcd_record_list_count(released) == 1 &&
         strcmp(underlay_etcd_record_container_id(underlay_etcd_record_list_get(released, 0)),
                "c2") == 0);
    underlay_etcd_record_list_free(released);
    released = NULL;
    /* A huge count with NULL arrays fails before allocating anything. */
    EXPECT(underlay_etcd_store_gc_host(a, "n1", "host-a", NULL, NULL, (size_t)1 << 32, &released),
           UNDERLAY_RESULT_NULL_PARAMETER, "`container_ids`");
    TRUE(released == NULL);
    const char *bad[] = {"c1"}, *badif[] = {"bad/ifname"};
    EXPECT(underlay_etcd_store_gc_host(a, "n1", "host-a", bad, badif, 1, &released),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "bad/ifname");
  }
  TRUE(records_of(b, "n1", "host-a", "c1") == 1);
  TRUE(records_of(b, "n1", "host-b", "c3") == 1);
  EXPECT(underlay_etcd_store_addresses_by_host(a, "no-such-net", &(underlay_etcd_report *){NULL}),
         UNDERLAY_RESULT_NOT_FOUND, "no-such-net");

  /* No slices configured: none held, none collected. */
  {
    underlay_etcd_slices *sl = NULL;
    OK(underlay_etcd_store_slices_by_host(a, "n1", &sl));
    TRUE(sl != NULL && underlay_etcd_slices_host_count(sl) == 0 &&
         underlay_etcd_slices_host(sl, 0) == NULL && underlay_etcd_slices_count(sl, 0) == 0);
    underlay_etcd_slices_free(sl);
    OK(underlay_etcd_store_gc_slices(a, "n1", "host-a", &names));
    TRUE(underlay_string_list_count(names) == 0);
    underlay_string_list_free(names);
    names = NULL;
  }

  /* Release everything and delete the network: every host sees it gone. */
  {
    bool was = false;
    OK(underlay_ipam_release(ia, "c1", "eth0", &was));
    TRUE(was);
    OK(underlay_ipam_release(ib, "c3", "eth0", &was));
    TRUE(was);
  }
  /* host-a leaves (host-b still uses the network), then host-b: the definition goes. */
  OK(underlay_ipam_leave(sa, "n1", &names));
  TRUE(underlay_string_list_count(names) == 1 &&
       strcmp(underlay_string_list_get(names, 0), "host-b") == 0);
  underlay_string_list_free(names);
  names = NULL;
  OK(underlay_etcd_store_networks(b, &names));
  TRUE(underlay_string_list_count(names) == 1);
  underlay_string_list_free(names);
  names = NULL;
  OK(underlay_ipam_leave(sb, "n1", &names));
  TRUE(underlay_string_list_count(names) == 0);
  underlay_string_list_free(names);
  names = NULL;
  OK(underlay_etcd_store_networks(b, &names));
  TRUE(underlay_string_list_count(names) == 0);
  underlay_string_list_free(names);
  names = NULL;
  EXPECT(underlay_ipam_delete(sb, "n1"), UNDERLAY_RESULT_NOT_FOUND, "n1");
out:
  underlay_ipam_free(ia);
  underlay_ipam_free(ib);
  underlay_ipam_network_free(def);
  underlay_ipam_store_free(sa);
  underlay_ipam_store_free(sb);
  underlay_etcd_store_free(a);
  underlay_etcd_store_free(b);
}

int main(void) {
  url = getenv("UNDERLAY_TEST_ETCD");
  if (url == NULL || url[0] == 0) {
    fprintf(stderr, "test_etcd: UNDERLAY_TEST_ETCD is not set: run it with `cargo xtask c-test`, "
                    "which starts an etcd member\n");
    return 1;
  }
  snprintf(prefix, sizeof prefix, "/ulct-%d/", (int)getpid());
  test_bad_input();
  test_store();
  printf("test_etcd: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
