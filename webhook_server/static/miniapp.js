  // Telegram Mini App launch, read without Telegram's telegram-web-app.js (no third-party
  // script on these pages). Telegram passes the signed initData in the URL fragment
  // (#tgWebAppData=...); a client that injected window.Telegram.WebApp is read first.
  const telegram = (() => {
    let initData = "";
    try {
      const webApp = window.Telegram && window.Telegram.WebApp;
      if (webApp && typeof webApp.initData === "string") initData = webApp.initData;
    } catch (e) {
      initData = "";
    }
    if (!initData && location.hash.length > 1) {
      try {
        initData = new URLSearchParams(location.hash.slice(1)).get("tgWebAppData") || "";
      } catch (e) {
        initData = "";
      }
    }
    // Keep the signed data out of the address bar, of copies of the link and of history.
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);

    function postEvent(type, data) {
      const eventData = data || {};
      try {
        if (window.TelegramWebviewProxy && window.TelegramWebviewProxy.postEvent) {
          window.TelegramWebviewProxy.postEvent(type, JSON.stringify(eventData));
        } else if (window.external && "notify" in window.external) {
          window.external.notify(JSON.stringify({ eventType: type, eventData: eventData }));
        } else if (window.parent !== window) {
          window.parent.postMessage(
            JSON.stringify({ eventType: type, eventData: eventData }),
            "https://web.telegram.org",
          );
        }
      } catch (e) {
        // Not inside Telegram: nothing to tell.
      }
    }

    if (initData) postEvent("web_app_ready");
    return {
      initData: initData,
      inTelegram: initData !== "",
      close: () => postEvent("web_app_close"),
    };
  })();
