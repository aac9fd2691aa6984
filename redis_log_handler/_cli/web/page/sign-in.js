"use strict";
// Sends the token once; the server answers with an HttpOnly cookie that every later request carries.
document.getElementById("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const problem = document.getElementById("problem");
  const response = await fetch("/sign-in", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({token: document.getElementById("token").value}),
  });
  if (response.status === 204) {
    window.location.assign("/");
  } else {
    problem.textContent = "That is not the token.";
    problem.hidden = false;
  }
});
