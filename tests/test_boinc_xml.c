/* srv_boinc_xml and srv_boinc_key as plain functions: BOINC's messages parsed and refused, the
 * reply writer's escaping, and the code signature in BOINC's form checked with OpenSSL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "srv_boinc_key.h"
#include "srv_boinc_xml.h"
#include "ts_util.h"

static const char request[] =
	"<scheduler_request>\n"
	"    <authenticator> tse1.key </authenticator>\n"
	"    <hostid>42</hostid>\n"
	"    <platform_name>x86_64-pc-linux-gnu</platform_name>\n"
	"    <alt_platform>\n        <name>i686-pc-linux-gnu</name>\n    </alt_platform>\n"
	"    <work_req_seconds>12.5</work_req_seconds>\n"
	"    <cpu_req_secs>30.0</cpu_req_secs>\n"
	"<working_global_preferences><global_preferences><day_prefs><day_of_week>0</day_of_week>"
	"</day_prefs></global_preferences></working_global_preferences>\n"
	"<host_info>\n    <domain_name>pi &amp; co</domain_name>\n    <p_ncpus>4</p_ncpus>\n"
	"    <p_fpops>3.5e9</p_fpops>\n</host_info>\n"
	"    <code_sign_key>\n1024\nabcd\n.\n</code_sign_key>\n"
	"<result>\n    <name>ts_1_2_0</name>\n    <final_elapsed_time>7.25</final_elapsed_time>\n"
	"    <exit_status>0</exit_status>\n    <state>5</state>\n"
	"<stderr_out>\n<core_client_version>7.20.5</core_client_version>\n<![CDATA[\nok\n]]>\n</stderr_out>\n"
	"</result>\n"
	"<other_results>\n    <other_result>\n        <name>ts_3_4_0</name>\n    </other_result>\n</other_results>\n"
	"</scheduler_request>\n";

Test(boinc_xml, a_scheduler_request_as_the_client_writes_it)
{
	srv_boinc_request q;
	char why[256] = "";
	cr_assert_eq(srv_boinc_parse_request(request, strlen(request), &q, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect_str_eq(q.authenticator, "tse1.key");
	cr_expect_eq(q.hostid, 42);
	cr_expect_eq(q.n_platforms, 2);
	cr_expect_str_eq(q.platforms[0], "x86_64-pc-linux-gnu");
	cr_expect_str_eq(q.platforms[1], "i686-pc-linux-gnu");
	cr_expect_float_eq(q.work_req_s, 30.0, 1e-9); /* the larger of the two asks */
	cr_expect_eq(q.ncpus, 4);
	cr_expect_float_eq(q.fpops, 3.5e9, 1);
	cr_expect_str_eq(q.domain_name, "pi & co");
	cr_expect(q.has_code_sign_key);
	cr_assert_eq(q.n_results, 1);
	cr_expect_str_eq(q.results[0].name, "ts_1_2_0");
	cr_expect_eq(q.results[0].state, 5);
	cr_expect_float_eq(q.results[0].elapsed_s, 7.25, 1e-9);
	cr_assert_eq(q.n_other, 1);
	cr_expect_str_eq(q.other[0], "ts_3_4_0");
}

Test(boinc_xml, results_over_the_cap_are_held_for_the_next_rpc)
{
	size_t cap = 16 + (SRV_BOINC_MAX_RESULTS + 2) * 64;
	char *doc = malloc(cap + 64);
	size_t n = (size_t)sprintf(doc, "<scheduler_request>");
	for (int i = 0; i < SRV_BOINC_MAX_RESULTS + 2; i++)
		n += (size_t)sprintf(doc + n, "<result><name>ts_%d_%d_0</name></result>", i + 1, i + 1);
	n += (size_t)sprintf(doc + n, "</scheduler_request>");
	srv_boinc_request *q = malloc(sizeof(*q));
	char why[256];
	cr_assert_eq(srv_boinc_parse_request(doc, n, q, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect_eq(q->n_results, SRV_BOINC_MAX_RESULTS);
	cr_expect(q->more_results);
	cr_expect_eq(q->n_other, 2);
	cr_expect_str_eq(q->other[1], "ts_66_66_0");
	free(q);
	free(doc);
}

Test(boinc_xml, what_a_client_never_sends_is_refused)
{
	static const char *const bad[] = {
		"",
		"not xml",
		"<scheduler_request>",
		"<scheduler_reply></scheduler_reply>",
		"<!DOCTYPE x [<!ENTITY e \"e\">]><scheduler_request>&e;</scheduler_request>",
		"<scheduler_request><hostid>12x</hostid></scheduler_request>",
		"<scheduler_request><hostid>-1</hostid></scheduler_request>",
		"<scheduler_request><host_info><p_ncpus>1e99</p_ncpus></host_info></scheduler_request>",
		"<scheduler_request><work_req_seconds>nan</work_req_seconds></scheduler_request>",
		"<scheduler_request><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
		"<a><a><a><a><a><a><a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>"
		"</a></a></a></a></a></a></a></a></a></a></a></a></a></scheduler_request>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv_boinc_request q;
		char why[256] = "";
		cr_expect_eq(srv_boinc_parse_request(bad[i], strlen(bad[i]), &q, why, sizeof(why)), TS_ERR_BAD_REQUEST,
			     "accepted: %s", bad[i]);
		cr_expect(why[0], "no reason for: %s", bad[i]);
	}
	/* An authenticator over its 255 characters. */
	char doc[1024];
	char longkey[400];
	memset(longkey, 'k', 300);
	longkey[300] = '\0';
	snprintf(doc, sizeof(doc), "<scheduler_request><authenticator>%s</authenticator></scheduler_request>", longkey);
	srv_boinc_request q;
	char why[256];
	cr_expect_eq(srv_boinc_parse_request(doc, strlen(doc), &q, why, sizeof(why)), TS_ERR_BAD_REQUEST);
}

Test(boinc_xml, an_upload_header_stops_at_its_data)
{
	/* The bytes after <data> are the file's: anything at all, not XML. */
	static const char body[] = "<data_server_request>\n<core_client_major_version>7</core_client_major_version>\n"
				   "<file_upload>\n<file_info>\n<name>ts_1_2_0_out</name>\n<xml_signature>\n"
				   "0123abcd\n</xml_signature>\n<max_nbytes>4096</max_nbytes>\n</file_info>\n"
				   "<nbytes>6</nbytes>\n<md5_cksum>00ff</md5_cksum>\n<offset>0</offset>\n<data>\n<&\x01\xff>x";
	srv_boinc_upload u;
	char why[256] = "";
	cr_assert_eq(srv_boinc_parse_upload(body, sizeof(body) - 1, &u, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect_not(u.size_probe);
	cr_expect_str_eq(u.name, "ts_1_2_0_out");
	cr_expect_str_eq(u.signature, "0123abcd");
	cr_expect_eq(u.nbytes, 6);
	cr_expect_str_eq(u.md5, "00ff");
	cr_expect_eq(sizeof(body) - 1 - u.data_at, 6);
	cr_expect_eq(memcmp(body + u.data_at, "<&\x01\xff>x", 6), 0);
	static const char probe[] = "<data_server_request>\n<get_file_size>ts_1_2_0_out</get_file_size>\n"
				    "</data_server_request>\n";
	cr_assert_eq(srv_boinc_parse_upload(probe, sizeof(probe) - 1, &u, why, sizeof(why)), TS_OK, "%s", why);
	cr_expect(u.size_probe);
	cr_expect_str_eq(u.name, "ts_1_2_0_out");
	static const char neither[] = "<data_server_request><file_upload><nbytes>1</nbytes></file_upload></data_server_request>";
	cr_expect_eq(srv_boinc_parse_upload(neither, sizeof(neither) - 1, &u, why, sizeof(why)), TS_ERR_BAD_REQUEST);
}

Test(boinc_xml, the_writer_escapes_values_and_keeps_its_cap)
{
	srv_xbuf b;
	srv_xbuf_init(&b, 1024);
	srv_xbuf_elem(&b, "name", "a<b>&\"c'");
	size_t n = 0;
	char *text = srv_xbuf_take(&b, &n);
	cr_assert(text);
	cr_expect_str_eq(text, "<name>a&lt;b&gt;&amp;&quot;c&apos;</name>\n");
	cr_expect_eq(n, strlen(text));
	free(text);
	srv_xbuf_init(&b, 16);
	srv_xbuf_elem(&b, "name", "more than sixteen bytes");
	cr_expect_null(srv_xbuf_take(&b, NULL), "a reply over its cap was not refused");
}

/* BOINC's hex layout back to bytes (lib/crypt.cpp sscan_hex_data). */
static size_t unhex(const char *text, unsigned char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = text; *p && *p != '.' && n < cap; p++) {
		unsigned v;
		if (*p == '\n')
			continue;
		cr_assert_eq(sscanf(p, "%2x", &v), 1);
		out[n++] = (unsigned char)v;
		p++;
	}
	return n;
}

Test(boinc_key, files_are_signed_as_boinc_clients_check)
{
	char dir[] = "/tmp/tessera-test-key-XXXXXX", path[200], sig[SRV_BOINC_SIG_TEXT], md5[33];
	cr_assert(mkdtemp(dir));
	cr_assert_eq(srv_boinc_key_ensure(dir), TS_OK);
	srv_boinc_key *k = NULL;
	cr_assert_eq(srv_boinc_key_load(dir, &k), TS_OK);
	/* The key text: "1024", 8 lines of 64 hex digits (modulus, then exponent), ".". */
	const char *pub = srv_boinc_key_public(k);
	cr_assert_eq(strncmp(pub, "1024\n", 5), 0);
	unsigned char raw[256];
	cr_assert_eq(unhex(pub + 5, raw, sizeof(raw)), 256);
	cr_expect_eq(strlen(pub), 5 + 8 * 65 + 2);
	const char data[] = "an app file";
	cr_assert_eq(srv_boinc_key_sign(k, data, strlen(data), sig), TS_OK);
	unsigned char s[128];
	cr_assert_eq(unhex(sig, s, sizeof(s)), 128);
	/* What the client does: RSA public decrypt with PKCS#1 padding gives the file's hex MD5. */
	BIGNUM *bn_n = BN_bin2bn(raw, 128, NULL), *bn_e = BN_bin2bn(raw + 128, 128, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pk = NULL;
	cr_assert(EVP_PKEY_fromdata_init(fc) == 1 && EVP_PKEY_fromdata(fc, &pk, EVP_PKEY_PUBLIC_KEY, params) == 1);
	EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(pk, NULL);
	unsigned char clear[128];
	size_t clen = sizeof(clear);
	cr_assert(EVP_PKEY_verify_recover_init(vc) == 1 && EVP_PKEY_CTX_set_rsa_padding(vc, RSA_PKCS1_PADDING) == 1);
	cr_assert_eq(EVP_PKEY_verify_recover(vc, clear, &clen, s, sizeof(s)), 1);
	srv_boinc_md5_hex(data, strlen(data), md5);
	cr_expect_eq(clen, 32);
	cr_expect_eq(memcmp(clear, md5, 32), 0);
	EVP_PKEY_CTX_free(vc);
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(fc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	/* Per-result secrets: stable, distinct, checked whole. */
	char a[SRV_BOINC_MAC_HEX], b[SRV_BOINC_MAC_HEX];
	srv_boinc_mac(k, "out:ts_1_2_0_out", a);
	srv_boinc_mac(k, "out:ts_1_3_0_out", b);
	cr_expect_neq(strcmp(a, b), 0);
	cr_expect(srv_boinc_mac_ok(k, "out:ts_1_2_0_out", a));
	cr_expect_not(srv_boinc_mac_ok(k, "out:ts_1_3_0_out", a));
	a[31] ^= 1;
	cr_expect_not(srv_boinc_mac_ok(k, "out:ts_1_2_0_out", a));
	cr_expect_not(srv_boinc_mac_ok(k, "out:ts_1_2_0_out", ""));
	srv_boinc_key_free(k);
	/* Made 0600, and kept: a second ensure does not replace them. */
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, SRV_BOINC_KEY_FILE);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	char *before = NULL, *after = NULL;
	size_t n1, n2;
	cr_assert_eq(ts_read_file(path, 65536, &before, &n1), TS_OK);
	cr_assert_eq(srv_boinc_key_ensure(dir), TS_OK);
	cr_assert_eq(ts_read_file(path, 65536, &after, &n2), TS_OK);
	cr_expect(n1 == n2 && memcmp(before, after, n1) == 0, "ensure replaced the key");
	free(before);
	free(after);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", dir, SRV_BOINC_SECRET_FILE);
	unlink(path);
	rmdir(dir);
}

Test(boinc_xml, an_empty_element_of_the_wrong_kind_is_refused_cleanly)
{
	/* expat ends the empty element's token after the parser was stopped at its start. */
	static const char *const docs[] = {"<data_server_request/>", "<scheduler_request/>x", "<x><y/></x>"};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		srv_boinc_request q;
		char why[256] = "";
		cr_expect_eq(srv_boinc_parse_request(docs[i], strlen(docs[i]), &q, why, sizeof(why)), TS_ERR_BAD_REQUEST,
			     "%s", docs[i]);
	}
	srv_boinc_upload u;
	char why[256];
	cr_expect_eq(srv_boinc_parse_upload("<scheduler_request/>", 20, &u, why, sizeof(why)), TS_ERR_BAD_REQUEST);
}
