// Search excerpts on a copy of the site opened from disk (file://). Sphinx's search page fetches each result page to
// cut an excerpt from it; browsers refuse those requests for file:// pages, so the excerpts were missing and the
// console filled with errors. The build ships each page's text (page_texts.js, this page only): the fetch of a
// known page is answered from it; every other request goes to the network as before.
(() => {
  if (window.location.protocol !== "file:" || !window.PAGE_TEXTS) return;
  const networkFetch = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = new URL(typeof input === "string" ? input : input.url, window.location.href);
    const name = decodeURIComponent(url.pathname.split("/").pop());
    if (Object.prototype.hasOwnProperty.call(window.PAGE_TEXTS, name)) {
      return Promise.resolve(new Response(window.PAGE_TEXTS[name], { headers: { "Content-Type": "text/html" } }));
    }
    return networkFetch(input, init);
  };
})();
