/* SPDX-License-Identifier: MIT */
/*
 * libcurl, loaded with dlopen() when the first etcd store is created: a halod
 * on one node never maps it, nor what it needs (OpenSSL, Kerberos, LDAP,
 * SSH: about 3.3 MB of resident memory).  Include this instead of
 * <curl/curl.h>: the curl_* calls below then go through the loaded library.
 */
#pragma once

#define CURL_DISABLE_TYPECHECK 1 /* its checking macros would call the real symbols */
#include <curl/curl.h>

struct curl_dl {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *h, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
    CURLcode (*easy_perform)(CURL *h);
    void (*easy_cleanup)(CURL *h);
    const char *(*easy_strerror)(CURLcode cc);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev_bitmask, int *running);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *p);
    CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_in_queue);
    CURLMcode (*multi_cleanup)(CURLM *m);
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
};

extern struct curl_dl curl_dl;

/* Loads libcurl.so.4 once (thread-unsafe: the loop's thread).  Returns 0, or
 * -ELIBACC with the reason logged (the library or a symbol is missing). */
int curl_dl_load(void);

/* curl.h makes some of these macros already (to stop further expansion). */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (curl_dl.global_init)
#define curl_easy_init (curl_dl.easy_init)
#define curl_easy_setopt (curl_dl.easy_setopt)
#define curl_easy_getinfo (curl_dl.easy_getinfo)
#define curl_easy_perform (curl_dl.easy_perform)
#define curl_easy_cleanup (curl_dl.easy_cleanup)
#define curl_easy_strerror (curl_dl.easy_strerror)
#define curl_multi_init (curl_dl.multi_init)
#define curl_multi_setopt (curl_dl.multi_setopt)
#define curl_multi_add_handle (curl_dl.multi_add_handle)
#define curl_multi_remove_handle (curl_dl.multi_remove_handle)
#define curl_multi_socket_action (curl_dl.multi_socket_action)
#define curl_multi_assign (curl_dl.multi_assign)
#define curl_multi_info_read (curl_dl.multi_info_read)
#define curl_multi_cleanup (curl_dl.multi_cleanup)
#define curl_slist_append (curl_dl.slist_append)
#define curl_slist_free_all (curl_dl.slist_free_all)
