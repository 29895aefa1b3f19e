/* cl_http: one reusable libcurl handle speaking Tessera's JSON API. */
#include "cl_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define CL_HTTP_REPLY_MAX (32u << 20) /* a job list of many jobs fits; a runaway reply does not */
#define CL_HTTP_CONNECT_MS 10000L
#define CL_HTTP_TIMEOUT_MS 60000L

struct cl_http {
	CURL *curl;
	struct curl_slist *headers;
	char url[CL_HTTP_URL_MAX];
	char *token;
	char *cacert; /* the CA file, for messages; NULL: none */
	const volatile sig_atomic_t *abort_flag;
	char errbuf[CURL_ERROR_SIZE];
	/* The reply being received; reset by each request. */
	char *buf;
	size_t len, cap;
	int too_large;
	double retry_after; /* the reply's Retry-After in seconds, 0: none */
};

ts_err cl_http_url_check(const char *url, char *why, size_t whylen)
{
	static const char https[] = "https://";
	if (!url || !*url) {
		snprintf(why, whylen, "no server URL given");
		return TS_ERR_BAD_REQUEST;
	}
	if (strncasecmp(url, "http://", 7) == 0) {
		snprintf(why, whylen, "plaintext http:// is not supported: use https://%s", url + 7);
		return TS_ERR_BAD_REQUEST;
	}
	if (strncasecmp(url, https, sizeof(https) - 1) != 0) {
		snprintf(why, whylen, "server URL must start with https:// (got '%.200s')", url);
		return TS_ERR_BAD_REQUEST;
	}
	const char *host = url + sizeof(https) - 1;
	if (!*host || *host == '/' || *host == ':') {
		snprintf(why, whylen, "server URL '%.200s' has no host", url);
		return TS_ERR_BAD_REQUEST;
	}
	if (strlen(url) >= CL_HTTP_URL_MAX - 64) {
		snprintf(why, whylen, "server URL is too long");
		return TS_ERR_BAD_REQUEST;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(why, whylen, "server URL contains spaces or control characters");
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

/* Keeps Retry-After (seconds; the HTTP-date form is not used by Tessera servers). */
static size_t http_header(char *data, size_t size, size_t nmemb, void *arg)
{
	cl_http *h = arg;
	size_t n = size * nmemb;
	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char tmp[32];
		size_t k = n - 12 < sizeof(tmp) - 1 ? n - 12 : sizeof(tmp) - 1;
		memcpy(tmp, data + 12, k);
		tmp[k] = '\0';
		char *end;
		double v = strtod(tmp, &end);
		if (end != tmp && v > 0)
			h->retry_after = v;
	}
	return n;
}

static size_t http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	cl_http *h = arg;
	size_t n = size * nmemb;
	if (n > CL_HTTP_REPLY_MAX - h->len) {
		h->too_large = 1;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (h->len + n + 1 > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;
		while (cap < h->len + n + 1)
			cap *= 2;
		char *p = realloc(h->buf, cap);
		if (!p)
			return 0;
		h->buf = p;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, data, n);
	h->len += n;
	h->buf[h->len] = '\0';
	return n;
}

/* Called by curl about once a second even when nothing moves: the place to notice a signal. */
static int http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	cl_http *h = arg;
	return h->abort_flag && *h->abort_flag ? 1 : 0;
}

/* The header list: JSON both ways, bearer token, and no "Expect: 100-continue" round trip. */
static ts_err http_build_headers(cl_http *h)
{
	struct curl_slist *list = NULL, *tmp;
	char auth[64 + 512];
	const char *lines[] = {"Accept: application/json", "Content-Type: application/json",
			       "Expect:", NULL};
	for (int i = 0; lines[i]; i++) {
		if (!(tmp = curl_slist_append(list, lines[i])))
			goto fail;
		list = tmp;
	}
	if (h->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", h->token);
		if (!(tmp = curl_slist_append(list, auth)))
			goto fail;
		list = tmp;
	}
	curl_slist_free_all(h->headers);
	h->headers = list;
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
	return TS_OK;
fail:
	curl_slist_free_all(list);
	return TS_ERR_NOMEM;
}

ts_err cl_http_set_token(cl_http *h, const char *token)
{
	char *copy = NULL;
	if (token && strlen(token) > 400)
		return TS_ERR_BAD_REQUEST;
	if (token && !(copy = strdup(token)))
		return TS_ERR_NOMEM;
	free(h->token);
	h->token = copy;
	return http_build_headers(h);
}

void cl_http_set_timeout(cl_http *h, double seconds)
{
	long ms = seconds > 0 ? (long)(seconds * 1000.0) : CL_HTTP_TIMEOUT_MS;
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 ms < CL_HTTP_CONNECT_MS ? ms : CL_HTTP_CONNECT_MS);
}

void cl_http_set_abort(cl_http *h, const volatile sig_atomic_t *flag)
{
	h->abort_flag = flag;
}

const char *cl_http_url(const cl_http *h)
{
	return h->url;
}

ts_err cl_http_open(const cl_http_opts *opts, cl_http **out, char *why, size_t whylen)
{
	ts_err result;
	cl_http *h = NULL;
	*out = NULL;
	result = cl_http_url_check(opts->url, why, whylen);
	if (result)
		goto out;
	result = TS_ERR_NOMEM;
	snprintf(why, whylen, "out of memory");
	if (!(h = calloc(1, sizeof(*h))) || !(h->curl = curl_easy_init()))
		goto out;
	snprintf(h->url, sizeof(h->url), "%s", opts->url);
	for (size_t n = strlen(h->url); n > 0 && h->url[n - 1] == '/'; n--)
		h->url[n - 1] = '\0';

	CURL *c = h->curl;
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tessera/0.1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	cl_http_set_timeout(h, 0);
	if (opts->pin)
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, opts->pin);
	if (opts->pin && !opts->cacert) {
		/* The pin is the whole trust: the self-signed chain cannot verify, and the
		 * certificate's names do not matter when the key is the one we expect. */
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		/* A CA file (with or without a pin) or the system CAs: chain and host name. */
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
		if (opts->cacert && (curl_easy_setopt(c, CURLOPT_CAINFO, opts->cacert) != CURLE_OK ||
				     !(h->cacert = strdup(opts->cacert))))
			goto out;
	}
	if ((result = cl_http_set_token(h, opts->token)) != TS_OK)
		goto out;
	*out = h;
	h = NULL;
	why[0] = '\0';
	result = TS_OK;
out:
	cl_http_close(h);
	return result;
}

void cl_http_close(cl_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->headers);
	free(h->cacert);
	if (h->token) {
		memset(h->token, 0, strlen(h->token)); /* a bearer token is a secret */
		free(h->token);
	}
	free(h->buf);
	free(h);
}

/* Maps a transport failure to our error and a sentence for users. */
static ts_err http_transport_error(cl_http *h, CURLcode rc, char *msg, size_t msglen)
{
	const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		snprintf(msg, msglen, "server key does not match the pinned key (%s)", h->url);
		return TS_ERR_PIN;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		if (h->cacert)
			snprintf(msg, msglen, "server certificate of %s does not verify against CA file "
					      "%s: %s",
				 h->url, h->cacert, detail);
		else
			snprintf(msg, msglen, "server certificate of %s is not trusted: %s (use --pin "
					      "or --cacert)",
				 h->url, detail);
		return TS_ERR_TLS;
	case CURLE_WRITE_ERROR:
		if (h->too_large) {
			snprintf(msg, msglen, "reply from %s is larger than %u MiB", h->url,
				 CL_HTTP_REPLY_MAX >> 20);
			return TS_ERR_TOO_LARGE;
		}
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		snprintf(msg, msglen, "request to %s interrupted", h->url);
		return TS_ERR_NETWORK;
	default:
		break;
	}
	snprintf(msg, msglen, "cannot reach %s: %s", h->url, detail);
	return TS_ERR_NETWORK;
}

/* An error answer: the server's own words when it sent the API's error object. */
static ts_err http_error_reply(cl_http *h, long code, const json_t *parsed, char *msg, size_t msglen)
{
	json_t *err = json_object_get(parsed, "error");
	const char *ecode = json_string_value(json_object_get(err, "code"));
	const char *emsg = json_string_value(json_object_get(err, "message"));
	ts_err result = ts_err_from_http((int)code, ecode);
	if (result == TS_OK) /* a 1xx or 3xx: we follow no redirects */
		result = TS_ERR_INTERNAL;
	if (emsg && *emsg)
		snprintf(msg, msglen, "%s", emsg);
	else
		snprintf(msg, msglen, "HTTP %ld from %s (%s)", code, h->url, ts_strerror(result));
	return result;
}

ts_err cl_http_request(cl_http *h, const char *method, const char *path, const json_t *body,
		       int *status, json_t **reply, char *msg, size_t msglen)
{
	ts_err result = TS_ERR_NOMEM;
	char url[CL_HTTP_URL_MAX + 256], dummy[8];
	char *text = NULL;
	json_t *parsed = NULL;
	long code = 0;
	if (!msg) {
		msg = dummy;
		msglen = sizeof(dummy);
	}
	msg[0] = '\0';
	if (reply)
		*reply = NULL;
	if (status)
		*status = 0;
	if (snprintf(url, sizeof(url), "%s%s", h->url, path) >= (int)sizeof(url)) {
		snprintf(msg, msglen, "request path too long");
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	if (body && !(text = json_dumps(body, JSON_COMPACT))) {
		snprintf(msg, msglen, "out of memory");
		goto out;
	}
	CURL *c = h->curl;
	h->len = 0;
	h->too_large = 0;
	h->retry_after = 0;
	h->errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	/* The handle is reused: reset whatever the previous request's method left behind. */
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "{}");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text ? text : "{}"));
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		result = http_transport_error(h, rc, msg, msglen);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (status)
		*status = (int)code;
	if (h->len > 0) {
		json_error_t jerr;
		parsed = json_loadb(h->buf, h->len, 0, &jerr);
	} else {
		parsed = json_null();
	}
	if (code >= 200 && code < 300) {
		if (!parsed) {
			snprintf(msg, msglen, "the reply of %s is not JSON (HTTP %ld)", h->url, code);
			result = TS_ERR_INTERNAL;
			goto out;
		}
		if (reply) {
			*reply = parsed;
			parsed = NULL;
		}
		result = TS_OK;
		goto out;
	}
	result = http_error_reply(h, code, parsed, msg, msglen);
out:
	free(text);
	json_decref(parsed);
	return result;
}

double cl_http_retry_after(const cl_http *h)
{
	return h->retry_after;
}

/* cl_http_raw's sink: a 2xx body goes to the file as it comes; any other answer is kept in the
 * buffer (capped) for its error object. */
struct http_sink {
	cl_http *h;
	FILE *out;
	int failed; /* fwrite failed */
};

static size_t http_write_sink(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_sink *k = arg;
	long code = 0;
	size_t n = size * nmemb;
	curl_easy_getinfo(k->h->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300)
		return http_write(data, size, nmemb, k->h);
	if (n && fwrite(data, 1, n, k->out) != n) {
		k->failed = 1;
		return 0;
	}
	return n;
}

ts_err cl_http_raw(cl_http *h, const char *method, const char *path, const void *body, size_t bodylen,
		   FILE *sink, int *status, json_t **reply, char *msg, size_t msglen)
{
	ts_err result = TS_ERR_NOMEM;
	char url[CL_HTTP_URL_MAX + 256], dummy[8];
	struct curl_slist *headers = NULL, *tmp;
	struct http_sink k = {.h = h, .out = sink};
	json_t *parsed = NULL;
	long code = 0;
	if (!msg) {
		msg = dummy;
		msglen = sizeof(dummy);
	}
	msg[0] = '\0';
	if (reply)
		*reply = NULL;
	if (status)
		*status = 0;
	if (snprintf(url, sizeof(url), "%s%s", h->url, path) >= (int)sizeof(url)) {
		snprintf(msg, msglen, "request path too long");
		result = TS_ERR_BAD_REQUEST;
		goto out;
	}
	/* This request's own headers: raw bytes out, whatever comes back. */
	for (struct curl_slist *l = h->headers; l; l = l->next) {
		const char *line = l->data;
		if (strncasecmp(line, "Content-Type:", 13) == 0 || strncasecmp(line, "Accept:", 7) == 0)
			continue;
		if (!(tmp = curl_slist_append(headers, line)))
			goto out;
		headers = tmp;
	}
	if (!(tmp = curl_slist_append(headers, body ? "Content-Type: application/octet-stream"
						    : "Accept: application/octet-stream, application/json")))
		goto out;
	headers = tmp;
	CURL *c = h->curl;
	h->len = 0;
	h->too_large = 0;
	h->retry_after = 0;
	h->errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
	}
	if (strcmp(method, body ? "POST" : "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (sink) {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_sink);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
	}
	CURLcode rc = curl_easy_perform(c);
	/* Back to the handle's own settings for the next request. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	if (rc == CURLE_WRITE_ERROR && k.failed) {
		snprintf(msg, msglen, "cannot write the answer of %s: output closed or full", h->url);
		result = TS_ERR_IO;
		goto out;
	}
	if (rc != CURLE_OK) {
		result = http_transport_error(h, rc, msg, msglen);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (status)
		*status = (int)code;
	parsed = h->len > 0 ? json_loadb(h->buf, h->len, 0, NULL) : json_null();
	if (code >= 200 && code < 300) {
		if (!sink && !parsed) {
			snprintf(msg, msglen, "the reply of %s is not JSON (HTTP %ld)", h->url, code);
			result = TS_ERR_INTERNAL;
			goto out;
		}
		if (reply && !sink) {
			*reply = parsed;
			parsed = NULL;
		}
		result = TS_OK;
		goto out;
	}
	result = http_error_reply(h, code, parsed, msg, msglen);
out:
	curl_slist_free_all(headers);
	json_decref(parsed);
	return result;
}
